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
use super::{promise, CellEnv, ScenarioOutput};
use crate::config::scenario_file::{at_least_one, ScenarioParams, ValueSize};
use crate::config::HumanDuration;
use crate::results::checks::PersistenceCheck;
use crate::results::failure::Failure;
use crate::results::recorder::{Recorder, Timeline};
use crate::server::deployment::{query, replication_state, sentinel_promotion, Role};
use crate::server::Node;

pub const STEPS: &[&str] = &["set", "read-back"];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurabilityConfig {
    pub connections: u32,
    /// How long to write before the server is stopped (writers keep going through the stop).
    pub duration: HumanDuration,
    pub value_size: usize,
    #[serde(flatten)]
    pub restart: RestartConfig,
    /// Read back from the replica that takes over instead of the restarted primary.
    pub failover: bool,
    /// `WAIT` after each SET.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitFor>,
}

/// `WAIT replicas timeout` after each SET.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WaitFor {
    pub replicas: u32,
    pub timeout: HumanDuration,
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
        let failover = p.failover.unwrap_or(false);
        if failover && p.restart_persistence.is_some() {
            return Err(
                "field `restart_persistence`: with `failover` the primary is not restarted".into(),
            );
        }
        let wait = match (p.wait_replicas, p.wait_timeout) {
            (Some(_), _) => Some(WaitFor {
                replicas: at_least_one(p.wait_replicas, "wait_replicas", 1)?,
                timeout: p
                    .wait_timeout
                    .unwrap_or(HumanDuration(Duration::from_secs(1))),
            }),
            (None, Some(_)) => return Err("field `wait_timeout` needs `wait_replicas`".into()),
            (None, None) => None,
        };
        Ok(DurabilityConfig {
            connections,
            duration: p.duration.unwrap_or(HumanDuration(Duration::from_secs(2))),
            value_size,
            restart: RestartConfig::resolve(p),
            failover,
            wait,
        })
    }
}

/// What one writer got acknowledged: (sequence number, ack time, round-trip ns), and how many
/// writes WAIT reported on fewer replicas than asked (not counted as acknowledged).
struct Acked(Vec<(u64, Instant, u64)>, u64);

async fn writer(
    id: u32,
    endpoint: Endpoint,
    prefix: String,
    value: Vec<u8>,
    wait: Option<WaitFor>,
    stop: Arc<AtomicBool>,
) -> Acked {
    let mut acked = Vec::new();
    let mut short = 0;
    let Ok(mut conn) = RespConn::connect(&endpoint, Duration::from_secs(1)).await else {
        return Acked(acked, short);
    };
    let wait_args = wait.map(|w| {
        (
            w.replicas.to_string(),
            (w.timeout.0.as_millis() as u64).max(1).to_string(),
        )
    });
    let reply_within = Duration::from_secs(1) + wait.map_or(Duration::ZERO, |w| w.timeout.0);
    let mut replies = Vec::with_capacity(2);
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("{prefix}{id}:{seq}");
        conn.push(&[b"SET", key.as_bytes(), &value]);
        if let Some((replicas, ms)) = &wait_args {
            conn.push(&[b"WAIT", replicas.as_bytes(), ms.as_bytes()]);
        }
        let sent = Instant::now();
        match tokio::time::timeout(reply_within, conn.round_trip(&mut replies)).await {
            Ok(Ok(())) if replies.first() == Some(&Reply::Ok) => {
                let replicated = match (&wait, replies.get(1)) {
                    (None, _) => true,
                    (Some(w), Some(Reply::Integer(n))) => *n >= w.replicas as i64,
                    (Some(_), _) => false,
                };
                if replicated {
                    let now = Instant::now();
                    acked.push((seq, now, now.duration_since(sent).as_nanos() as u64));
                } else {
                    short += 1;
                }
            }
            // The server is going down: every later write is unacknowledged, so stop here.
            _ => break,
        }
        seq += 1;
    }
    Acked(acked, short)
}

/// The node that took over from a stopped primary: its endpoint and what to call it.
struct TakenOver {
    endpoint: Endpoint,
    name: String,
    how: &'static str,
}

/// How long the Sentinels get to promote a replica, and a replica to notice its primary died.
const TAKE_OVER_TIMEOUT: Duration = Duration::from_secs(30);

/// With Sentinels: wait until they name another primary. Without: wait until `replica-1` has
/// seen its link drop (it has applied everything it received), then promote it with
/// `REPLICAOF NO ONE`, as an operator would.
async fn take_over(others: &[Node], old_port: u16) -> Result<TakenOver, String> {
    let deadline = Instant::now() + TAKE_OVER_TIMEOUT;
    let sentinels: Vec<Endpoint> = others
        .iter()
        .filter(|n| n.role == Role::Sentinel)
        .map(|n| n.server.endpoint())
        .collect();
    if !sentinels.is_empty() {
        let port = sentinel_promotion(&sentinels, old_port, || Instant::now() >= deadline)
            .await
            .ok_or(format!(
                "the Sentinels promoted no replica within {}s",
                TAKE_OVER_TIMEOUT.as_secs()
            ))?;
        let node = others
            .iter()
            .find(|n| n.server.port() == port)
            .ok_or(format!("the Sentinels named port {port}, which is no node"))?;
        return Ok(TakenOver {
            endpoint: node.server.endpoint(),
            name: node.name.clone(),
            how: "promoted by the Sentinels",
        });
    }
    let replica = others
        .iter()
        .find(|n| n.role == Role::Replica)
        .ok_or("the topology has no replica to fail over to")?;
    let endpoint = replica.server.endpoint();
    loop {
        match replication_state(&endpoint).await {
            Some(r) if !r.linked => break,
            _ if Instant::now() > deadline => {
                return Err(format!("{} still saw its primary as up", replica.name))
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    query::<()>(&endpoint, redis::cmd("REPLICAOF").arg("NO").arg("ONE"))
        .await
        .map_err(|e| format!("REPLICAOF NO ONE on {}: {e}", replica.name))?;
    Ok(TakenOver {
        endpoint,
        name: replica.name.clone(),
        how: "promoted with REPLICAOF NO ONE",
    })
}

pub async fn run(cfg: &DurabilityConfig, env: &mut CellEnv<'_>) -> ScenarioOutput {
    let start = Instant::now();
    let timeline = std::sync::Mutex::new(Timeline::new(0.0));
    let mut rec = Recorder::new(STEPS);
    let persistence_before = env.server.spec().persistence.clone();
    if (cfg.failover || cfg.wait.is_some())
        && (env.topology.replicas() == 0 || env.topology.is_cluster())
    {
        let field = if cfg.failover {
            "failover"
        } else {
            "wait_replicas"
        };
        // Nothing was measured, so this is no finding about the server: the cell cannot run.
        return ScenarioOutput::infra(format!(
            "field `{field}` needs a primary with replicas (topology `replica:N` or `sentinel`), and this cell's topology is {}",
            env.topology
        ));
    }
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
                cfg.wait,
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
    let (restart, taken_over) = if cfg.failover {
        fail_over(&cfg.restart, env).await
    } else {
        (cfg.restart.apply(env).await, None)
    };
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    let mut short = 0;
    for w in writers {
        if let Ok(a) = w.await {
            acked.push(a.0);
            short += a.1;
        }
    }
    let before: u64 = acked.iter().map(|a| a.len() as u64).sum();
    for (_, _, ns) in acked.iter().flatten() {
        rec.ok(0, *ns);
    }
    if let Some(w) = cfg.wait {
        for _ in 0..short {
            rec.error(0, Failure::WaitFewerReplicas, || {
                format!(
                    "WAIT {} {} reported fewer replicas: not counted as acknowledged",
                    w.replicas, w.timeout
                )
            });
        }
    }
    let read_from = taken_over
        .as_ref()
        .map_or_else(|| env.server.endpoint(), |t| t.endpoint.clone());
    rec.tick(&timeline, start.elapsed().as_secs());

    // Read every acknowledged key back.
    let mut lost_times: Vec<f64> = Vec::new();
    let mut unknown = 0;
    if restart.is_ok() {
        match RespConn::connect(&read_from, Duration::from_secs(2)).await {
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
                rec.error(1, Failure::ReadBackFailed, || e.to_string());
            }
        }
    }
    rec.flush(&timeline);
    let lost = lost_times.len() as u64;
    let expected = if cfg.failover {
        promise::expect_failover(
            &env.server.spec().server,
            cfg.restart.restart,
            env.topology.replicas(),
            cfg.wait.map(|w| w.replicas),
        )
    } else {
        cfg.restart.expectation(&persistence_before, None)
    };
    let (observed, matches) = PersistenceCheck::judge(&expected, before, lost, unknown);
    let window = (!lost_times.is_empty()).then(|| {
        let min = lost_times.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = lost_times.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        [min, max]
    });
    let check = PersistenceCheck {
        subject: match cfg.wait {
            Some(w) => format!("writes acknowledged with WAIT {}", w.replicas),
            None => "acknowledged writes".into(),
        },
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
        failover: taken_over.map(|t| format!("{}, {}", t.name, t.how)),
    };
    finish(rec, timeline, start, check, restart.err(), before)
}

/// Wait, stop the primary, and let a replica take over. Returns the time from the stop until
/// one did (ms), and which.
async fn fail_over(
    restart: &RestartConfig,
    env: &mut CellEnv<'_>,
) -> (Result<f64, String>, Option<TakenOver>) {
    tokio::time::sleep(restart.restart_delay.0).await;
    let down = Instant::now();
    let old_port = env.server.port();
    if let Err(e) = env.server.stop(restart.restart.stop_kind()).await {
        return (Err(e.to_string()), None);
    }
    match take_over(env.others, old_port).await {
        Ok(t) => (Ok(down.elapsed().as_secs_f64() * 1000.0), Some(t)),
        Err(e) => (Err(e), None),
    }
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
        "failover",
        "wait_replicas",
        "wait_timeout",
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
