//! `cache-ops`: raw cache load against one server. Each connection is one task with its own
//! connection, workload and histograms (no shared state on the hot path but one relaxed counter
//! for the progress display); results are merged when the run ends.
//!
//! Two load models:
//! - closed (no `rate`): each connection sends its next batch when the previous one returns;
//! - open (`rate`): batches follow a fixed schedule and latency is counted from each batch's
//!   intended send time when the harness is behind schedule, so a stalled server shows up in the
//!   percentiles instead of silently lowering the offered load (coordinated omission, as in wrk2).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::resp::{Endpoint, Reply, RespConn};
use super::workload::{Op, Workload, OP_NAMES};
use super::ScenarioOutput;
use crate::config::scenario_file::{
    at_least_one, max_error_rate, KeyDistribution, OpMix, ScenarioParams, ValueSize,
};
use crate::config::HumanDuration;
use crate::results::recorder::{Recorder, Timeline};
use crate::results::OpCounts;

/// How long the measured part lasts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunLength {
    Duration(HumanDuration),
    Ops(u64),
}

/// `cache-ops` parameters with every default filled in, as recorded in results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheOpsConfig {
    pub connections: u32,
    pub pipeline: u32,
    pub length: RunLength,
    pub warmup: HumanDuration,
    pub rate: Option<u64>,
    pub keyspace: u64,
    pub distribution: KeyDistribution,
    pub zipf_exponent: f64,
    pub value_size: (usize, usize),
    pub ttl: Option<HumanDuration>,
    pub op_timeout: HumanDuration,
    pub max_error_rate: f64,
    pub seed: u64,
    pub mix: OpMix,
}

impl CacheOpsConfig {
    pub fn resolve(p: &ScenarioParams) -> Result<Self, String> {
        let secs = |s: u64| HumanDuration(Duration::from_secs(s));
        let length = match (p.duration, p.ops) {
            (Some(_), Some(_)) => return Err("set either `duration` or `ops`, not both".into()),
            (None, Some(0)) => return Err("field `ops` must be at least 1".into()),
            (None, Some(n)) => RunLength::Ops(n),
            (Some(d), None) => RunLength::Duration(d),
            (None, None) => RunLength::Duration(secs(10)),
        };
        let value_size = match p.value_size.unwrap_or(ValueSize::Range([32, 256])) {
            ValueSize::Fixed(n) => (n, n),
            ValueSize::Range([a, b]) if a <= b => (a, b),
            ValueSize::Range([a, b]) => {
                return Err(format!("field `value_size`: min {a} > max {b}"))
            }
        };
        if value_size.1 > 64 * 1024 * 1024 {
            return Err("field `value_size`: at most 64 MiB".into());
        }
        let mix = p.mix.clone().unwrap_or(OpMix {
            get: 80,
            set: 15,
            del: 1,
            incr: 3,
            expire: 1,
        });
        if super::workload::weights(&mix).iter().all(|w| *w == 0) {
            return Err("field `mix`: at least one operation needs a weight above 0".into());
        }
        if p.rate == Some(0) {
            return Err("field `rate` must be above 0 (omit it for closed-loop load)".into());
        }
        let keyspace = at_least_one(p.keyspace, "keyspace", 10_000)?;
        let zipf_exponent = p.zipf_exponent.unwrap_or(0.99);
        if !(zipf_exponent >= 0.0 && zipf_exponent.is_finite()) {
            return Err("field `zipf_exponent` must be a number >= 0".into());
        }
        Ok(CacheOpsConfig {
            connections: at_least_one(p.connections, "connections", 50)?,
            pipeline: at_least_one(p.pipeline, "pipeline", 1)?,
            length,
            warmup: p.warmup.unwrap_or(secs(1)),
            rate: p.rate,
            keyspace,
            distribution: p.distribution.unwrap_or(KeyDistribution::Uniform),
            zipf_exponent,
            value_size,
            ttl: p.ttl,
            op_timeout: p.op_timeout.unwrap_or(secs(1)),
            max_error_rate: max_error_rate(p.max_error_rate)?,
            seed: p.seed.unwrap_or(1),
            mix,
        })
    }
}

/// Shared between the connections of one run.
struct Shared {
    cfg: CacheOpsConfig,
    endpoint: Endpoint,
    start: Instant,
    warmup_end: Instant,
    /// Duration mode: no batch starts after this.
    deadline: Option<Instant>,
    /// Ops mode: measured ops still to send.
    budget: AtomicI64,
    cancel: CancellationToken,
    progress: Arc<AtomicU64>,
    timeline: Mutex<Timeline>,
}

/// What one connection measured, besides its recorder.
struct ConnStats {
    rec: Recorder,
    sent: u64,
    warmup: u64,
    last_completion: Option<Instant>,
}

/// Run `cache-ops` against the server at `endpoint`.
pub async fn run(
    cfg: &CacheOpsConfig,
    endpoint: &Endpoint,
    key_prefix: &str,
    cancel: CancellationToken,
    progress: Arc<AtomicU64>,
) -> ScenarioOutput {
    let start = Instant::now() + Duration::from_millis(20);
    let warmup_end = start + cfg.warmup.0;
    let (deadline, budget) = match cfg.length {
        RunLength::Duration(d) => (Some(warmup_end + d.0), 0),
        RunLength::Ops(n) => (None, n as i64),
    };
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        endpoint: endpoint.clone(),
        start,
        warmup_end,
        deadline,
        budget: AtomicI64::new(budget),
        cancel,
        progress,
        timeline: Mutex::new(Timeline::new(cfg.warmup.0.as_secs_f64())),
    });
    let tasks: Vec<_> = (0..cfg.connections)
        .map(|i| {
            let shared = shared.clone();
            let prefix = key_prefix.to_string();
            tokio::spawn(async move { drive_connection(i, shared, prefix).await })
        })
        .collect();
    let mut all = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await {
            Ok(stats) => all.push(stats),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    summarize(&shared, all)
}

async fn drive_connection(index: u32, shared: Arc<Shared>, prefix: String) -> ConnStats {
    let cfg = &shared.cfg;
    let mut stats = ConnStats {
        rec: Recorder::new(OP_NAMES),
        sent: 0,
        warmup: 0,
        last_completion: None,
    };
    let mut workload = match Workload::new(
        cfg.seed.wrapping_mul(1_000_003).wrapping_add(index as u64),
        &cfg.mix,
        cfg.keyspace,
        cfg.distribution,
        cfg.zipf_exponent,
        cfg.value_size,
        prefix,
    ) {
        Ok(w) => w,
        Err(e) => unreachable!("config was validated: {e}"),
    };
    let pipeline = cfg.pipeline as usize;
    // Open model: each connection owns an equal share of the rate, staggered so connections
    // do not fire in lockstep.
    let interval = cfg
        .rate
        .map(|r| Duration::from_secs_f64(cfg.connections as f64 * pipeline as f64 / r as f64));
    let mut next_intended = shared.start
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(index as f64 / cfg.connections as f64)
        });
    let ttl: Option<&'static [u8]> = cfg.ttl.map(|t| {
        &*Box::leak(
            t.0.as_secs()
                .max(1)
                .to_string()
                .into_bytes()
                .into_boxed_slice(),
        )
    });
    let timeout = cfg.op_timeout.0;
    let mut conn: Option<RespConn> = None;
    let mut ops: Vec<Op> = Vec::with_capacity(pipeline);
    let mut replies: Vec<Reply> = Vec::with_capacity(pipeline);
    // One op timeout timer per connection, pushed forward before each batch: extending a
    // registered timer only updates its deadline, where a fresh `timeout()` per batch inserts
    // into and removes from the timer wheel every time.
    let mut op_timer = std::pin::pin!(tokio::time::sleep(timeout));

    tokio::time::sleep_until(shared.start.into()).await;
    loop {
        if shared.cancel.is_cancelled() {
            break;
        }
        // When does this batch start, and is it measured?
        let mut send_at = Instant::now();
        if let Some(interval) = interval {
            if next_intended > send_at {
                tokio::time::sleep_until(next_intended.into()).await;
                // Ahead of schedule: the timer's own lateness is the harness's, not the
                // server's, so latency counts from when we actually send.
                send_at = Instant::now();
            } else {
                // Behind schedule: count from the intended time (coordinated omission).
                send_at = next_intended;
            }
            next_intended += interval;
        }
        if shared.deadline.is_some_and(|d| send_at >= d) {
            break;
        }
        let measured = send_at >= shared.warmup_end;
        let mut batch = pipeline;
        if measured && shared.deadline.is_none() {
            let left = shared.budget.fetch_sub(pipeline as i64, Ordering::Relaxed);
            if left <= 0 {
                break;
            }
            batch = batch.min(left as usize);
        }

        stats.sent += batch as u64;
        let reply = send_batch(
            &mut conn,
            &shared.endpoint,
            timeout,
            batch,
            &mut workload,
            ttl,
            &mut ops,
            &mut replies,
            op_timer.as_mut(),
        )
        .await;
        let done = Instant::now();
        stats.rec.tick(
            &shared.timeline,
            done.duration_since(shared.start).as_secs(),
        );
        shared.progress.fetch_add(batch as u64, Ordering::Relaxed);
        if !measured {
            stats.warmup += batch as u64;
            continue;
        }
        stats.last_completion = Some(done);
        let latency_ns = done.saturating_duration_since(send_at).as_nanos() as u64;
        match reply {
            Ok(()) => {
                for (op, reply) in ops.iter().zip(&replies) {
                    if let Reply::Error(message) = reply {
                        let code = message.split_whitespace().next().unwrap_or("ERR");
                        stats
                            .rec
                            .error(op.index(), format!("server error {code}"), || {
                                message.clone()
                            });
                    } else {
                        stats.rec.ok(op.index(), latency_ns);
                    }
                }
            }
            Err(e) => {
                let kind = classify(&e);
                for op in &ops {
                    stats
                        .rec
                        .error(op.index(), kind.to_string(), || e.to_string());
                }
                // The connection's state is unknown after any I/O error or timeout: start over.
                conn = None;
                if kind != "timeout" {
                    // Do not spin on a dead server: the errors are counted, the next try waits.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    stats.rec.flush(&shared.timeline);
    stats
}

/// Connect if needed, then send `batch` new commands in one write and read their replies.
/// The ops are drawn first so that a failed connect is still counted against each of them.
#[allow(clippy::too_many_arguments)]
async fn send_batch(
    conn: &mut Option<RespConn>,
    endpoint: &Endpoint,
    timeout: Duration,
    batch: usize,
    workload: &mut Workload,
    ttl: Option<&'static [u8]>,
    ops: &mut Vec<Op>,
    replies: &mut Vec<Reply>,
    mut op_timer: std::pin::Pin<&mut tokio::time::Sleep>,
) -> std::io::Result<()> {
    ops.clear();
    ops.extend((0..batch).map(|_| workload.next_op()));
    if conn.is_none() {
        *conn = Some(RespConn::connect(endpoint, timeout).await?);
    }
    let c = conn.as_mut().expect("connected above");
    for op in ops.iter() {
        let (args, n) = workload.command(*op, ttl);
        c.push(&args[..n]);
    }
    op_timer
        .as_mut()
        .reset(tokio::time::Instant::now() + timeout);
    tokio::select! {
        biased;
        done = c.round_trip(replies) => done,
        () = op_timer => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no reply within op_timeout",
        )),
    }
}

/// A short, stable name for a connection-level error, for grouping.
fn classify(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind::*;
    match e.kind() {
        TimedOut => "timeout",
        ConnectionRefused => "connection refused",
        PermissionDenied => "auth failed",
        InvalidData => "protocol error",
        _ => "connection lost",
    }
}

fn summarize(shared: &Shared, all: Vec<ConnStats>) -> ScenarioOutput {
    let cfg = &shared.cfg;
    let mut counts = OpCounts::default();
    let mut rec = Recorder::new(OP_NAMES);
    let mut last = shared.warmup_end;
    for s in &all {
        counts.sent += s.sent;
        counts.warmup += s.warmup;
        rec.merge(&s.rec);
        if let Some(t) = s.last_completion {
            last = last.max(t);
        }
    }
    counts.ok = rec.ok_total();
    counts.errors = rec.error_total();
    let window = last
        .saturating_duration_since(shared.warmup_end)
        .as_secs_f64();
    let (ops, error_list) = rec.summarize(window);

    let measured = counts.ok + counts.errors;
    let error_rate = if measured > 0 {
        counts.errors as f64 / measured as f64
    } else {
        1.0
    };
    let (passed, reason) = if shared.cancel.is_cancelled() {
        (false, "interrupted".to_string())
    } else if measured == 0 {
        (
            false,
            "no operation completed in the measured window".to_string(),
        )
    } else if error_rate > cfg.max_error_rate {
        let top = error_list
            .first()
            .map(|e| format!(" (most: {} x{})", e.kind, e.count))
            .unwrap_or_default();
        (
            false,
            format!(
                "{} of {measured} operations failed ({:.3}% > max_error_rate {:.3}%){top}",
                counts.errors,
                error_rate * 100.0,
                cfg.max_error_rate * 100.0
            ),
        )
    } else {
        (
            true,
            format!("{measured} operations, {} errors", counts.errors),
        )
    };
    let timeline = std::mem::replace(
        &mut *shared.timeline.lock().expect("timeline lock"),
        Timeline::new(0.0),
    );
    ScenarioOutput {
        counts,
        ops,
        errors: error_list,
        timeline: timeline.finish(),
        measured_seconds: window,
        passed,
        reason,
        ..Default::default()
    }
}
