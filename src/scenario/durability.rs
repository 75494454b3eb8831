//! `durability` (raw, no app): writers record every acknowledged SET with the time it was
//! acknowledged; the server is stopped while they write (SIGKILL, SHUTDOWN NOSAVE or graceful)
//! and restarted on the same data dir; every acknowledged key is then read back. Lost writes are
//! counted, with the window (relative to the stop) in which they were acknowledged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::resp::{Endpoint, Reply, RespConn};
use super::session_persistence::{finish, RestartConfig};
use super::{CellEnv, ScenarioOutput};
use crate::config::scenario_file::{at_least_one, ScenarioParams, ValueSize};
use crate::config::HumanDuration;
use crate::results::checks::PersistenceCheck;
use crate::results::recorder::{Recorder, Timeline};

pub const STEPS: &[&str] = &["set", "read-back"];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurabilityConfig {
    pub connections: u32,
    /// How long to write before the server is stopped (writers keep going through the stop).
    pub duration: HumanDuration,
    pub value_size: usize,
    #[serde(flatten)]
    pub restart: RestartConfig,
}

impl DurabilityConfig {
    pub fn resolve(p: &ScenarioParams) -> Result<Self, String> {
        let connections = at_least_one(p.connections, "connections", 4)?;
        let value_size = match p.value_size {
            Some(ValueSize::Fixed(n)) => n,
            Some(ValueSize::Range(_)) => {
                return Err("field `value_size`: durability writes one fixed size".into())
            }
            None => 64,
        };
        Ok(DurabilityConfig {
            connections,
            duration: p.duration.unwrap_or(HumanDuration(Duration::from_secs(2))),
            value_size,
            restart: RestartConfig::resolve(p),
        })
    }
}

/// What one writer got acknowledged: (sequence number, ack time, round-trip ns).
struct Acked(Vec<(u64, Instant, u64)>);

async fn writer(
    id: u32,
    endpoint: Endpoint,
    prefix: String,
    value: Vec<u8>,
    stop: Arc<AtomicBool>,
) -> Acked {
    let mut acked = Vec::new();
    let Ok(mut conn) = RespConn::connect(&endpoint, Duration::from_secs(1)).await else {
        return Acked(acked);
    };
    let mut replies = Vec::with_capacity(1);
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("{prefix}{id}:{seq}");
        conn.push(&[b"SET", key.as_bytes(), &value]);
        let sent = Instant::now();
        match tokio::time::timeout(Duration::from_secs(1), conn.round_trip(&mut replies)).await {
            Ok(Ok(())) if replies.first() == Some(&Reply::Ok) => {
                let now = Instant::now();
                acked.push((seq, now, now.duration_since(sent).as_nanos() as u64));
            }
            // The server is going down: every later write is unacknowledged, so stop here.
            _ => break,
        }
        seq += 1;
    }
    Acked(acked)
}

pub async fn run(cfg: &DurabilityConfig, env: &mut CellEnv<'_>) -> ScenarioOutput {
    let start = Instant::now();
    let timeline = std::sync::Mutex::new(Timeline::new(0.0));
    let mut rec = Recorder::new(STEPS);
    let persistence_before = env.server.spec().persistence.clone();
    let endpoint = env.server.endpoint();
    let stop = Arc::new(AtomicBool::new(false));
    let value = vec![b'v'; cfg.value_size];
    let writers: Vec<_> = (0..cfg.connections)
        .map(|i| {
            tokio::spawn(writer(
                i,
                endpoint.clone(),
                env.key_prefix.clone(),
                value.clone(),
                stop.clone(),
            ))
        })
        .collect();

    // Write for a while, then take the server down under the writers' feet; with a delay, the
    // writers stop first and the server goes down that long after the last write.
    tokio::time::sleep(cfg.duration.0).await;
    if !cfg.restart.restart_delay.0.is_zero() {
        stop.store(true, Ordering::Relaxed);
    }
    let stopped_at = Instant::now() + cfg.restart.restart_delay.0;
    let restart_at = stopped_at.duration_since(start).as_secs_f64();
    let restart = cfg.restart.apply(env).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        if let Ok(a) = w.await {
            acked.push(a.0);
        }
    }
    let before: u64 = acked.iter().map(|a| a.len() as u64).sum();
    for (_, _, ns) in acked.iter().flatten() {
        rec.ok(0, *ns);
    }
    rec.tick(&timeline, start.elapsed().as_secs());

    // Read every acknowledged key back.
    let mut lost_times: Vec<f64> = Vec::new();
    let mut unknown = 0;
    if restart.is_ok() {
        match RespConn::connect(&env.server.endpoint(), Duration::from_secs(2)).await {
            Ok(mut conn) => {
                let mut replies = Vec::new();
                for (id, writes) in acked.iter().enumerate() {
                    for chunk in writes.chunks(1000) {
                        for (seq, _, _) in chunk {
                            let key = format!("{}{id}:{seq}", env.key_prefix);
                            conn.push(&[b"EXISTS", key.as_bytes()]);
                        }
                        let t = Instant::now();
                        if conn.round_trip(&mut replies).await.is_err() {
                            unknown += chunk.len() as u64;
                            continue;
                        }
                        rec.ok(1, t.elapsed().as_nanos() as u64);
                        for ((_, acked_at, _), reply) in chunk.iter().zip(&replies) {
                            if *reply != Reply::Integer(1) {
                                let ms = if *acked_at >= stopped_at {
                                    acked_at.duration_since(stopped_at).as_secs_f64() * 1000.0
                                } else {
                                    -(stopped_at.duration_since(*acked_at).as_secs_f64() * 1000.0)
                                };
                                lost_times.push(ms);
                            }
                        }
                    }
                }
            }
            Err(e) => {
                unknown = before;
                rec.error(1, "read-back failed".into(), || e.to_string());
            }
        }
    }
    rec.flush(&timeline);
    let lost = lost_times.len() as u64;
    let expected = cfg.restart.expectation(&persistence_before, None);
    let (observed, matches) = PersistenceCheck::judge(&expected, before, lost, unknown);
    let window = (!lost_times.is_empty()).then(|| {
        let min = lost_times.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = lost_times.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        [min, max]
    });
    let check = PersistenceCheck {
        subject: "acknowledged writes".into(),
        restart: cfg.restart.restart,
        delay_seconds: cfg.restart.restart_delay.0.as_secs_f64(),
        persistence: persistence_before.to_string(),
        restarted_with: env.server.spec().persistence.to_string(),
        before,
        kept: before.saturating_sub(lost + unknown),
        lost,
        unknown,
        transient_errors: 0,
        expected,
        observed,
        matches,
        lost_window_ms: window,
        downtime_ms: *restart.as_ref().unwrap_or(&0.0),
        restart_at_seconds: Some(restart_at),
    };
    finish(rec, timeline, start, check, restart.err(), before)
}

impl super::Scenario for DurabilityConfig {
    const KIND: &'static str = "durability";
    const FIELDS: &'static [&'static str] = &[
        "connections",
        "value_size",
        "duration",
        "restart",
        "restart_delay",
        "restart_persistence",
    ];
    const NEEDS_APP: bool = false;
    const OPS: Option<&'static [&'static str]> = Some(STEPS);
    const CHECK_METRICS: &'static [&'static str] = &["lost"];

    fn from_params(p: &ScenarioParams) -> Result<Self, String> {
        DurabilityConfig::resolve(p)
    }
    fn planned_seconds(&self) -> u64 {
        self.duration.0.as_secs()
    }
    async fn run(&self, env: &mut CellEnv<'_>) -> ScenarioOutput {
        run(self, env).await
    }
}
