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
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

use super::cluster::{Conn, Target};
use super::resp::Reply;
use super::workload::{Op, Workload, WorkloadSpec, OP_NAMES};
use super::ScenarioOutput;
use crate::config::scenario_file::{
    at_least_one, max_error_rate, KeyDistribution, OpMix, ScenarioParams, ValueSize,
};
use crate::config::HumanDuration;
use crate::results::failure::Failure;
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
    /// Keys 0..fill of the keyspace are SET before measuring (the fill phase).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fill: Option<u64>,
    pub distribution: KeyDistribution,
    pub zipf_exponent: f64,
    pub value_size: (usize, usize),
    pub ttl: Option<HumanDuration>,
    pub op_timeout: HumanDuration,
    pub max_error_rate: f64,
    pub seed: u64,
    pub mix: OpMix,
    /// The `[[server.users]]` user the load logs in as (default: the harness's credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl_user: Option<String>,
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
        if p.fill.is_some_and(|f| f > keyspace) {
            return Err(format!(
                "field `fill`: at most the keyspace ({keyspace} keys)"
            ));
        }
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
            fill: p.fill.filter(|f| *f > 0),
            distribution: p.distribution.unwrap_or(KeyDistribution::Uniform),
            zipf_exponent,
            value_size,
            ttl: p.ttl,
            op_timeout: p.op_timeout.unwrap_or(secs(1)),
            max_error_rate: max_error_rate(p.max_error_rate)?,
            seed: p.seed.unwrap_or(1),
            mix,
            acl_user: p.acl_user.clone(),
        })
    }
}

/// When the measured run starts: decided once every connection is set up, so connecting (which
/// takes seconds at 10,000 connections) is its own phase and never part of the window.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    warmup_end: Instant,
    /// Duration mode: no batch starts after this.
    deadline: Option<Instant>,
}

/// Shared between the connections of one run.
struct Shared {
    cfg: CacheOpsConfig,
    target: Target,
    workload: WorkloadSpec,
    /// `ttl` in decimal seconds, as SET EX and EXPIRE send it.
    ttl: Option<Vec<u8>>,
    /// Ops mode: measured ops still to send.
    budget: AtomicI64,
    cancel: CancellationToken,
    progress: Arc<AtomicU64>,
    timeline: Mutex<Timeline>,
    /// Connection `i` records into `shards[i % len]`.
    shards: Vec<Mutex<Shard>>,
    /// The setup phase: one "connect" histogram and its failures.
    setup: Mutex<Recorder>,
    /// Bounds concurrent connects, so thousands of SYNs do not overflow the server's accept
    /// backlog (a dropped SYN is retried after a second, which then looks like a slow connect).
    connect_slots: Semaphore,
    /// One permit per connection that finished its setup (connected or failed).
    ready: Semaphore,
}

/// What a group of connections measured. Connections share a few recorders (taking an
/// uncontended lock once per batch) instead of owning one each: an HDR histogram grows with the
/// largest latency it holds, and heaptrack showed one recorder per connection (6 histograms of up
/// to ~190 KB) was ~0.7 MB per connection, 3.4 GB of heap at 5,000 connections, with most CPU
/// time in page faults for those histograms and in merging each connection's second into the
/// timeline.
struct Shard {
    rec: Recorder,
    sent: u64,
    warmup: u64,
    last_completion: Option<Instant>,
}

impl Shard {
    /// Record one measured batch. Returns the error kind when the connection must be dropped.
    fn record(
        &mut self,
        ops: &[Op],
        replies: &[Reply],
        reply: &std::io::Result<()>,
        latency: Duration,
        timeout: Duration,
    ) -> Option<Failure> {
        match reply {
            // The reply arrived, but more than op_timeout after the batch was due: the socket
            // had it in time and the harness read it late, or (open loop) the batch went out
            // late. Either way no latency above op_timeout is recorded without a timeout.
            Ok(()) if latency > timeout => {
                let late = || {
                    format!(
                        "reply {:.1} ms after the batch was due, over op_timeout {} ms (harness or server overloaded)",
                        latency.as_secs_f64() * 1e3,
                        timeout.as_millis()
                    )
                };
                // Failures keep what they cost in the failed-latency histograms, as HTTP
                // failures do: a user waited that long for nothing.
                let latency_ns = latency.as_nanos() as u64;
                for op in ops {
                    self.rec
                        .failed(op.index(), latency_ns, Failure::LateReply, late);
                }
                None
            }
            Ok(()) => {
                let latency_ns = latency.as_nanos() as u64;
                for (op, reply) in ops.iter().zip(replies) {
                    if let Reply::Error(message) = reply {
                        self.rec.failed(
                            op.index(),
                            latency_ns,
                            Failure::server_error(message),
                            || message.clone(),
                        );
                    } else {
                        match (op, reply) {
                            (Op::Get, Reply::Nil) => self.rec.lookup(op.index(), latency_ns, false),
                            (Op::Get, _) => self.rec.lookup(op.index(), latency_ns, true),
                            (Op::Del | Op::Expire, Reply::Integer(n)) => {
                                self.rec.lookup(op.index(), latency_ns, *n > 0)
                            }
                            _ => self.rec.ok(op.index(), latency_ns),
                        }
                    }
                }
                None
            }
            Err(e) => {
                let kind = Failure::of_io(e);
                let latency_ns = latency.as_nanos() as u64;
                for op in ops {
                    self.rec
                        .failed(op.index(), latency_ns, kind.clone(), || e.to_string());
                }
                Some(kind)
            }
        }
    }
}

/// Recorders per load thread: enough that threads rarely wait for each other's lock.
const SHARDS_PER_THREAD: usize = 4;
/// Connects in flight at once during setup.
const CONNECTS_IN_FLIGHT: usize = 256;

/// Where the cell's commands go: its server, or every shard of its cluster by hash slot; as
/// `acl_user` when one is named.
pub async fn target_of(env: &super::CellEnv<'_>, acl_user: Option<&str>) -> Result<Target, String> {
    let mut endpoint = env.server.endpoint();
    if let Some(name) = acl_user {
        let user = env
            .server
            .spec()
            .settings
            .users
            .iter()
            .find(|u| u.name == name)
            .ok_or_else(|| format!("acl_user `{name}` is not in [[server.users]]"))?;
        // `default` without a password is who an unauthenticated connection already is.
        let anonymous = user.password.is_empty();
        endpoint.user = (!anonymous).then(|| user.name.clone());
        endpoint.password = (!anonymous).then(|| user.password.clone());
    }
    if !env.topology.is_cluster() {
        return Ok(Target::Single(endpoint));
    }
    super::cluster::SlotMap::fetch(&endpoint)
        .await
        .map(Target::Cluster)
        .map_err(|e| format!("reading the cluster's slot map: {e}"))
}

/// Run `cache-ops` against one server or a cluster.
pub async fn run(
    cfg: &CacheOpsConfig,
    target: Target,
    key_prefix: &str,
    cancel: CancellationToken,
    progress: Arc<AtomicU64>,
) -> ScenarioOutput {
    let workload = match WorkloadSpec::new(
        cfg.seed,
        &cfg.mix,
        cfg.keyspace,
        cfg.distribution,
        cfg.zipf_exponent,
        cfg.value_size,
    ) {
        Ok(w) => w,
        Err(e) => unreachable!("config was validated: {e}"),
    };
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    let shards = (threads * SHARDS_PER_THREAD).clamp(1, cfg.connections as usize);
    let budget = match cfg.length {
        RunLength::Duration(_) => 0,
        RunLength::Ops(n) => n as i64,
    };
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        target,
        workload,
        ttl: cfg
            .ttl
            .map(|t| t.0.as_secs().max(1).to_string().into_bytes()),
        budget: AtomicI64::new(budget),
        cancel,
        progress,
        timeline: Mutex::new(Timeline::new(cfg.warmup.0.as_secs_f64())),
        shards: (0..shards)
            .map(|_| {
                Mutex::new(Shard {
                    rec: Recorder::new(OP_NAMES),
                    sent: 0,
                    warmup: 0,
                    last_completion: None,
                })
            })
            .collect(),
        setup: Mutex::new(Recorder::new(SETUP_NAMES)),
        connect_slots: Semaphore::new(CONNECTS_IN_FLIGHT),
        ready: Semaphore::new(0),
    });
    let (clock_tx, clock_rx) = watch::channel(None);
    let setup_started = Instant::now();
    let tasks: Vec<_> = (0..cfg.connections)
        .map(|i| {
            let shared = shared.clone();
            let prefix = key_prefix.to_string();
            let clock = clock_rx.clone();
            tokio::spawn(async move { drive_connection(i, shared, prefix, clock).await })
        })
        .collect();
    drop(clock_rx);
    let all_ready = tokio::select! {
        r = shared.ready.acquire_many(cfg.connections) => r.is_ok(),
        () = shared.cancel.cancelled() => false,
    };
    let setup_seconds = setup_started.elapsed().as_secs_f64();
    let mut clock = None;
    if all_ready {
        let start = Instant::now() + Duration::from_millis(20);
        let warmup_end = start + cfg.warmup.0;
        let c = Clock {
            start,
            warmup_end,
            deadline: match cfg.length {
                RunLength::Duration(d) => Some(warmup_end + d.0),
                RunLength::Ops(_) => None,
            },
        };
        clock = Some(c);
        // Every receiver is held by a task still waiting for it.
        let _ = clock_tx.send(Some(c));
    }
    drop(clock_tx);
    for t in tasks {
        if let Err(e) = t.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    summarize(&shared, clock, setup_seconds)
}

async fn drive_connection(
    index: u32,
    shared: Arc<Shared>,
    prefix: String,
    mut clock: watch::Receiver<Option<Clock>>,
) {
    let cfg = &shared.cfg;
    let timeout = cfg.op_timeout.0;
    let mut conn = connect_for_setup(&shared).await;
    if let Some(keys) = cfg.fill {
        fill_share(index, &shared, &mut conn, keys, &prefix).await;
    }
    shared.ready.add_permits(1);
    let clock = match clock.wait_for(Option::is_some).await {
        Ok(c) => c.expect("waited for Some"),
        // Interrupted during setup: nothing is measured.
        Err(_) => return,
    };
    let shard = &shared.shards[index as usize % shared.shards.len()];
    let mut workload = Workload::new(
        &shared.workload,
        cfg.seed.wrapping_mul(1_000_003).wrapping_add(index as u64),
        prefix,
    );
    let pipeline = cfg.pipeline as usize;
    // Open model: each connection owns an equal share of the rate, staggered so connections
    // do not fire in lockstep.
    let interval = cfg
        .rate
        .map(|r| Duration::from_secs_f64(cfg.connections as f64 * pipeline as f64 / r as f64));
    let mut next_intended = clock.start
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(index as f64 / cfg.connections as f64)
        });
    let ttl = shared.ttl.as_deref();
    let mut ops: Vec<Op> = Vec::with_capacity(pipeline);
    let mut replies: Vec<Reply> = Vec::with_capacity(pipeline);
    // One op timeout timer per connection, pushed forward before each batch: extending a
    // registered timer only updates its deadline, where a fresh `timeout()` per batch inserts
    // into and removes from the timer wheel every time.
    let mut op_timer = std::pin::pin!(tokio::time::sleep(timeout));

    tokio::time::sleep_until(clock.start.into()).await;
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
        if clock.deadline.is_some_and(|d| send_at >= d) {
            break;
        }
        let measured = send_at >= clock.warmup_end;
        let mut batch = pipeline;
        if measured && clock.deadline.is_none() {
            let left = shared.budget.fetch_sub(pipeline as i64, Ordering::Relaxed);
            if left <= 0 {
                break;
            }
            batch = batch.min(left as usize);
        }

        let reply = send_batch(
            &mut conn,
            &shared.target,
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
        let reset = {
            let mut s = shard.lock().expect("shard lock");
            s.rec
                .tick(&shared.timeline, done.duration_since(clock.start).as_secs());
            s.sent += batch as u64;
            if measured {
                s.last_completion = s.last_completion.max(Some(done));
                let latency = done.saturating_duration_since(send_at);
                s.record(&ops, &replies, &reply, latency, timeout)
            } else {
                s.warmup += batch as u64;
                None
            }
        };
        shared.progress.fetch_add(batch as u64, Ordering::Relaxed);
        if let Some(kind) = reset {
            // The connection's state is unknown after any I/O error or timeout: start over.
            conn = None;
            if kind != Failure::Timeout {
                // Do not spin on a dead server: the errors are counted, the next try waits.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    shard
        .lock()
        .expect("shard lock")
        .rec
        .flush(&shared.timeline);
}

/// The setup phase's operations: connecting, then the fill's SETs.
const SETUP_NAMES: &[&str] = &["connect", "fill"];
const FILL: usize = 1;
/// SETs per round trip in the fill phase.
const FILL_PIPELINE: u64 = 64;

/// The fill phase, this connection's share: keys `index`, `index + connections`, ... below
/// `keys`, SET in pipelined batches before the clock starts. Each key is counted in the "fill" row
/// (ok with its batch's latency, or an error).
async fn fill_share(index: u32, shared: &Shared, conn: &mut Option<Conn>, keys: u64, prefix: &str) {
    let cfg = &shared.cfg;
    let step = cfg.connections as u64;
    let mut workload = Workload::new(
        &shared.workload,
        cfg.seed.wrapping_mul(7_000_003).wrapping_add(index as u64),
        prefix.to_string(),
    );
    let limit = cfg.op_timeout.0.max(Duration::from_secs(10));
    let ttl = shared.ttl.as_deref();
    let mut replies = Vec::with_capacity(FILL_PIPELINE as usize);
    let mut key = index as u64;
    while key < keys && !shared.cancel.is_cancelled() {
        let batch: Vec<u64> = (0..FILL_PIPELINE)
            .map(|i| key + i * step)
            .take_while(|k| *k < keys)
            .collect();
        key += FILL_PIPELINE * step;
        let t0 = Instant::now();
        let result = match conn.as_mut() {
            Some(c) => {
                for k in &batch {
                    let (args, n) = workload.fill_command(*k, ttl);
                    c.push(&args[..n]);
                }
                tokio::time::timeout(limit, c.round_trip(&mut replies))
                    .await
                    .unwrap_or_else(|_| {
                        Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no reply within the fill's timeout",
                        ))
                    })
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "not connected (the setup connect failed)",
            )),
        };
        let latency_ns = t0.elapsed().as_nanos() as u64;
        let mut setup = shared.setup.lock().expect("setup lock");
        match result {
            Ok(()) => {
                for reply in &replies {
                    match reply {
                        Reply::Error(e) => setup.error(
                            FILL,
                            Failure::during("fill", Failure::ServerError(None)),
                            || e.clone(),
                        ),
                        _ => setup.ok(FILL, latency_ns),
                    }
                }
            }
            Err(e) => {
                let kind = Failure::during("fill", Failure::of_io(&e));
                for _ in &batch {
                    setup.error(FILL, kind.clone(), || e.to_string());
                }
                drop(setup);
                // Its state is unknown: the measured phase reconnects.
                *conn = None;
            }
        }
    }
}

/// Connect before the run starts, recording how long it took (or why it failed: the connection
/// then retries in its first batch, where a failure counts against that batch's operations).
async fn connect_for_setup(shared: &Shared) -> Option<Conn> {
    let _slot = shared.connect_slots.acquire().await.ok()?;
    // Generous: at thousands of connections the server accepts them one by one.
    let limit = shared.cfg.op_timeout.0.max(Duration::from_secs(10));
    let t0 = Instant::now();
    let result = Conn::connect(&shared.target, limit).await;
    let mut setup = shared.setup.lock().expect("setup lock");
    match result {
        Ok(c) => {
            setup.ok(0, t0.elapsed().as_nanos() as u64);
            Some(c)
        }
        Err(e) => {
            setup.error(0, Failure::during("setup", Failure::of_io(&e)), || {
                e.to_string()
            });
            None
        }
    }
}

/// Connect if needed, then send `batch` new commands in one write and read their replies.
/// The ops are drawn first so that a failed connect is still counted against each of them.
#[allow(clippy::too_many_arguments)]
async fn send_batch(
    conn: &mut Option<Conn>,
    target: &Target,
    timeout: Duration,
    batch: usize,
    workload: &mut Workload,
    ttl: Option<&[u8]>,
    ops: &mut Vec<Op>,
    replies: &mut Vec<Reply>,
    mut op_timer: std::pin::Pin<&mut tokio::time::Sleep>,
) -> std::io::Result<()> {
    ops.clear();
    ops.extend((0..batch).map(|_| workload.next_op()));
    if conn.is_none() {
        *conn = Some(Conn::connect(target, timeout).await?);
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

fn summarize(shared: &Shared, clock: Option<Clock>, setup_seconds: f64) -> ScenarioOutput {
    let cfg = &shared.cfg;
    let mut counts = OpCounts::default();
    let mut rec = Recorder::new(OP_NAMES);
    let mut last = clock.map(|c| c.warmup_end);
    for shard in &shared.shards {
        let s = shard.lock().expect("shard lock");
        counts.sent += s.sent;
        counts.warmup += s.warmup;
        rec.merge(&s.rec);
        last = last.max(s.last_completion);
    }
    counts.ok = rec.ok_total();
    counts.errors = rec.error_total();
    let window = match (clock, last) {
        (Some(c), Some(last)) => last.saturating_duration_since(c.warmup_end).as_secs_f64(),
        _ => 0.0,
    };
    let (mut ops, mut error_list) = rec.summarize(window);
    // The setup phase gets its own row after "all" (not part of it): connects per second of
    // setup and each connect's latency.
    let setup = shared.setup.lock().expect("setup lock");
    let (setup_ops, setup_errors) = setup.summarize(setup_seconds);
    ops.extend(setup_ops.into_iter().filter(|o| o.op != "all"));
    error_list.extend(setup_errors);

    let measured = counts.ok + counts.errors;
    let error_rate = if measured > 0 {
        counts.errors as f64 / measured as f64
    } else {
        1.0
    };
    let (passed, mut reason) = if shared.cancel.is_cancelled() {
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
    let all = ops.iter().find(|o| o.op == "all");
    if let Some(ratio) = all.and_then(|a| a.hit_ratio()) {
        let per_op: Vec<String> = ops
            .iter()
            .filter(|o| o.op != "all")
            .filter_map(|o| Some(format!("{} {:.3}", o.op, o.hit_ratio()?)))
            .collect();
        reason.push_str(&format!("; hit ratio {ratio:.3} ({})", per_op.join(", ")));
    }
    if let Some(fill) = ops.iter().find(|o| o.op == "fill") {
        reason.push_str(&format!("; filled {} keys", fill.ok));
        if fill.errors > 0 {
            reason.push_str(&format!(" ({} failed: hits are undercounted)", fill.errors));
        }
    }
    for note in window_notes(cfg, window, measured) {
        reason.push_str("; ");
        reason.push_str(&note);
    }
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

/// What a reader of the numbers must know about the measured window: that it ran far longer
/// than planned (late replies stretch it, and throughput is per second of it), and in open loop
/// whether the offered rate was held.
fn window_notes(cfg: &CacheOpsConfig, window: f64, measured: u64) -> Vec<String> {
    let mut notes = Vec::new();
    if let RunLength::Duration(d) = cfg.length {
        let planned = d.0.as_secs_f64();
        let allowed = planned * 1.1 + cfg.op_timeout.0.as_secs_f64();
        if window > allowed {
            notes.push(format!(
                "the measured window lasted {window:.1} s for a {planned:.0} s duration: the last \
                 batches were sent before the deadline but finished {:.1} s after it (the harness \
                 or the server could not keep up; throughput is per second of the whole window)",
                window - planned
            ));
        }
    }
    if let Some(rate) = cfg.rate {
        let achieved = if window > 0.0 {
            measured as f64 / window
        } else {
            0.0
        };
        if achieved < rate as f64 * RATE_HELD {
            notes.push(format!(
                "the offered rate was not held: {achieved:.0} ops/s measured for rate = {rate} \
                 (below {:.0}%; latencies count from each batch's scheduled time)",
                RATE_HELD * 100.0
            ));
        }
    }
    notes
}

/// Open loop: the share of `rate` that counts as holding it.
const RATE_HELD: f64 = 0.95;

impl super::Scenario for CacheOpsConfig {
    const KIND: &'static str = "cache-ops";
    const FIELDS: &'static [&'static str] = &[
        "connections",
        "pipeline",
        "ops",
        "rate",
        "warmup",
        "keyspace",
        "fill",
        "distribution",
        "zipf_exponent",
        "value_size",
        "ttl",
        "seed",
        "mix",
        "duration",
        "acl_user",
    ];
    const NEEDS_APP: bool = false;
    const OPS: Option<&'static [&'static str]> = Some(OP_NAMES);

    fn from_params(p: &ScenarioParams) -> Result<Self, String> {
        CacheOpsConfig::resolve(p)
    }
    fn planned_seconds(&self) -> u64 {
        match self.length {
            RunLength::Duration(d) => (d.0 + self.warmup.0).as_secs(),
            RunLength::Ops(_) => 0,
        }
    }
    fn connections(&self) -> u64 {
        self.connections as u64
    }
    async fn run(&self, env: &mut super::CellEnv<'_>) -> ScenarioOutput {
        let target = match target_of(env, self.acl_user.as_deref()).await {
            Ok(t) => t,
            Err(reason) => {
                return ScenarioOutput {
                    reason,
                    ..Default::default()
                }
            }
        };
        run(
            self,
            target,
            &env.key_prefix,
            env.cancel.clone(),
            env.progress.clone(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_later_than_op_timeout_is_a_timeout_not_a_latency() {
        let mut shard = Shard {
            rec: Recorder::new(OP_NAMES),
            sent: 0,
            warmup: 0,
            last_completion: None,
        };
        let timeout = Duration::from_secs(1);
        let ops = [Op::Get, Op::Set];
        let replies = [Reply::Nil, Reply::Ok];
        let on_time = shard.record(&ops, &replies, &Ok(()), Duration::from_millis(900), timeout);
        let late = shard.record(
            &ops,
            &replies,
            &Ok(()),
            Duration::from_millis(1100),
            timeout,
        );
        assert_eq!((on_time, late), (None, None), "the connection is kept");
        assert_eq!((shard.rec.ok_total(), shard.rec.error_total()), (2, 2));
        let (ops, errors) = shard.rec.summarize(1.0);
        let all = ops.iter().find(|o| o.op == "all").unwrap();
        assert!(all.latency.max_us <= 1_000_000.0, "{:?}", all.latency);
        // The late pair is a failure, and what it cost is kept with the failures.
        let failed = all.failed_latency.as_ref().expect("failures are timed");
        assert_eq!(failed.count, 2);
        assert!(
            (1_099_000.0..=1_102_000.0).contains(&failed.max_us),
            "{failed:?}"
        );
        assert_eq!(all.waited().count, 4);
        assert_eq!(errors[0].kind, "timeout (late reply)");
        assert!(
            errors[0].example.contains("1100.0 ms"),
            "{}",
            errors[0].example
        );
    }
}
