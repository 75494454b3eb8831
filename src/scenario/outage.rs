//! `outage`: the login flow runs, the server is killed in the middle of it and brought back.
//! Reported per step: what users got while the server was down (status, how long they waited),
//! whether the app stayed available (a working fallback), and how long after the server returned
//! a new login worked again. Beside the flow, users who logged in before the server went down
//! keep reading as themselves through the outage: what they get (a 500, or a silent logout while
//! the app looks healthy) is what most users of a real site see.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use super::browser::{Browser, SessionState};
use super::login_flow::{self, Event, FlowLength, LoginFlowConfig, STEP_NAMES};
use super::{CellEnv, ScenarioOutput};
use crate::config::scenario_file::{FaultKind, ScenarioParams};
use crate::config::HumanDuration;
use crate::results::checks::{
    Check, LoggedInUsers, OutageReport, ReadsInSecond, ReadsSeen, StepDuringOutage,
};
use crate::server::deployment::{query, replication_state, sentinel_promotion, Role};
use crate::server::{Endpoint, RunningServer, StopKind};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutageConfig {
    #[serde(flatten)]
    pub flow: LoginFlowConfig,
    /// Seconds into the flow when the server is killed.
    pub down_at: HumanDuration,
    /// How long it stays down.
    pub down_for: HumanDuration,
    /// A new login must work again within this long after the server is back.
    pub recovery_timeout: HumanDuration,
    /// The cell fails if any request failed while the server was down (for fallback configs).
    pub expect_available: bool,
    /// Users logged in before the flow starts who keep reading as themselves (0: none).
    pub logged_in_users: u32,
    /// The node that goes down (`primary`, or a node name of the cell's topology).
    pub node: String,
    pub fault: FaultKind,
}

/// Pause between one logged-in user's reads.
const READ_INTERVAL: Duration = Duration::from_millis(200);

impl OutageConfig {
    pub fn resolve(p: &ScenarioParams) -> Result<Self, String> {
        let secs = |s| HumanDuration(Duration::from_secs(s));
        let mut p = p.clone();
        p.duration = Some(p.duration.unwrap_or(secs(12)));
        p.iterations = None;
        // Errors are the point here; the flow's own error budget does not decide the verdict.
        p.max_error_rate = Some(1.0);
        let flow = LoginFlowConfig::resolve(&p)?;
        let FlowLength::Duration(total) = flow.length else {
            unreachable!("duration set above")
        };
        let down_at = p.down_at.unwrap_or(secs(3));
        let down_for = p.down_for.unwrap_or(secs(3));
        if down_at.0 + down_for.0 >= total.0 {
            return Err(format!(
                "field `duration` ({total}) must be longer than down_at + down_for ({down_at} + {down_for})"
            ));
        }
        Ok(OutageConfig {
            flow,
            down_at,
            down_for,
            recovery_timeout: p.recovery_timeout.unwrap_or(secs(10)),
            expect_available: p.expect_available.unwrap_or(false),
            logged_in_users: p.logged_in_users.unwrap_or(5),
            node: p.node.clone().unwrap_or_else(|| "primary".into()),
            fault: p.fault.unwrap_or_default(),
        })
    }
}

pub async fn run(cfg: &OutageConfig, env: &mut CellEnv<'_>) -> ScenarioOutput {
    let base = env.app_url.clone().expect("outage runs against an app");
    let mut logged_in: Vec<Browser> = (0..cfg.logged_in_users)
        .map(|i| {
            let name = format!("{}l{i}", env.user_tag);
            env.browser(&base, i as usize, name, cfg.flow.request_timeout.0)
        })
        .collect();
    let logins = join_all(logged_in.iter_mut().map(|b| b.sign_up_and_log_in())).await;
    if let Some(Err(e)) = logins.iter().find(|l| l.is_err()) {
        let failed = logins.iter().filter(|l| l.is_err()).count();
        return ScenarioOutput {
            reason: format!(
                "{failed} of {} users could not log in before the outage ({e})",
                logins.len()
            ),
            ..Default::default()
        };
    }
    // Where the Sentinels are, and the primary's port, before a node is borrowed for the fault.
    let sentinels: Vec<Endpoint> = env
        .others
        .iter()
        .filter(|n| n.role == Role::Sentinel)
        .map(|n| n.server.endpoint())
        .collect();
    let primary_port = env.server.port();
    let primary = env.server.endpoint();
    let node_ports: Vec<(String, u16)> = env
        .others
        .iter()
        .map(|n| (n.name.clone(), n.server.port()))
        .collect();
    let topology = env.topology;
    let Some((server, role)) =
        faulted_node(&mut *env.server, &mut *env.others, topology, &cfg.node)
    else {
        let mut names = vec!["primary".to_string()];
        names.extend(node_ports.iter().map(|(n, _)| n.clone()));
        return ScenarioOutput {
            reason: format!(
                "field `node`: the {topology} topology has no node `{}` (nodes: {})",
                cfg.node,
                names.join(", ")
            ),
            ..Default::default()
        };
    };
    if matches!(cfg.fault, FaultKind::Detach | FaultKind::Lag) && role != Role::Replica {
        return ScenarioOutput {
            reason: format!(
                "field `fault`: `{}` cuts a replica's replication, and `{}` is not a replica",
                fault_name(cfg.fault),
                cfg.node
            ),
            ..Default::default()
        };
    }
    let watch_failover = !sentinels.is_empty() && role == Role::Primary;
    let t0 = Instant::now();
    let flow_done = CancellationToken::new();
    let fault = async {
        tokio::time::sleep(cfg.down_at.0).await;
        let mut repl = ReplicaWatch::new(role, &primary);
        let stopped = inflict(server, cfg.fault, &mut repl).await;
        // Stamped once the fault is in place: from here on the node does not serve as before.
        let down = t0.elapsed();
        tokio::time::sleep(cfg.down_for.0).await;
        repl.measure_lag(&server.endpoint()).await;
        // Stamped when the repair begins: the node may answer before it returns.
        let up = t0.elapsed();
        let up = repair(server, cfg.fault, primary_port, &mut repl)
            .await
            .map(|_| up);
        if up.is_ok() {
            repl.measure_catch_up(&server.endpoint(), flow_done.clone())
                .await;
        }
        (down, stopped.and(up), repl)
    };
    // Field by field: `env.server` is borrowed by the fault above.
    let users = login_flow::Users {
        target: env.target,
        tag: &env.user_tag,
        accounts: &env.accounts,
    };
    let flow = async {
        let out = login_flow::run_with_events(
            &cfg.flow,
            &base,
            &users,
            env.cancel.clone(),
            env.progress.clone(),
            true,
        )
        .await;
        flow_done.cancel();
        out
    };
    let reads = join_all(
        logged_in
            .iter()
            .map(|b| keep_reading(b, t0, flow_done.clone())),
    );
    let failover = async {
        if !watch_failover {
            return None;
        }
        tokio::time::sleep(cfg.down_at.0).await;
        // When (since t0) a Sentinel first named another primary, and which port.
        let port =
            sentinel_promotion(&sentinels, primary_port, || flow_done.is_cancelled()).await?;
        Some((t0.elapsed(), port))
    };
    let ((mut output, events), (down, up, repl), reads, promoted) =
        tokio::join!(flow, fault, reads, failover);
    let up = match up {
        Ok(up) => up,
        Err(e) => {
            output.passed = false;
            output.reason = format!("the server did not come back: {e}");
            return output;
        }
    };
    let mut report = analyze(&events, down, up, cfg.recovery_timeout.0);
    if report.recovery_seconds < 0.0 {
        if let Some(at) = login_after_the_flow(cfg, env, &base, t0, up).await {
            report.recovery_seconds = at.saturating_sub(up).as_secs_f64();
            report.recovered = true;
        }
    }
    if let Some(promise) = super::promise::topology_promise(topology) {
        report.promise = Some(promise.to_string());
        report.fault = Some(format!("{} {}", cfg.node, fault_verb(cfg.fault)));
        report.logins_failed_seconds = logins_failed_for(&events, down);
        report.replica_behind_bytes = repl.behind;
        report.caught_up_seconds = repl.caught_up.map(|d| d.as_secs_f64());
    }
    if let Some((at, port)) = promoted {
        report.failover_seconds = Some(at.saturating_sub(down).as_secs_f64());
        report.promoted = Some(
            node_ports
                .iter()
                .find(|(_, p)| *p == port)
                .map_or(format!("port {port}"), |(n, _)| n.clone()),
        );
    }
    let lost = reads
        .iter()
        .filter(|user| matches!(user.last().map(|r| &r.state), Some(SessionState::Lost(_))))
        .count() as u64;
    let reads: Vec<Read> = reads.into_iter().flatten().collect();
    report.logged_in = (cfg.logged_in_users > 0).then(|| {
        let mut seen = logged_in_users(&reads, cfg.logged_in_users, down, up);
        seen.sessions_lost = lost;
        seen
    });
    let mut problems = Vec::new();
    if !report.recovered {
        problems.push(format!(
            "no login succeeded within {} of the server's return",
            cfg.recovery_timeout
        ));
    }
    if cfg.expect_available && !report.available_during {
        let failed: u64 = report.during.iter().map(|s| s.errors).sum();
        problems.push(format!(
            "{failed} requests failed while the server was down (expected a working fallback)"
        ));
    }
    let seen_by_logged_in = report.logged_in.as_ref().map(|l| {
        let d = &l.during;
        if cfg.expect_available && d.failed + d.logged_out > 0 {
            problems.push(format!(
                "logged-in users: {} reads failed and {} found them logged out while the server was down (expected a working fallback)",
                d.failed, d.logged_out
            ));
        }
        format!(
            "; users logged in before: {} ok, {} logged out, {} failed while down, {} ok, {} logged out after",
            d.ok, d.logged_out, d.failed, l.after.ok, l.after.logged_out
        )
    });
    let during: Vec<String> = report
        .during
        .iter()
        .map(|s| format!("{} {}/{} ok", s.step, s.ok, s.ok + s.errors))
        .collect();
    output.passed = problems.is_empty();
    output.reason = if problems.is_empty() {
        format!(
            "down {:.1}s: {}; login works again {:.2}s after the server returned{}",
            report.down_for_seconds,
            during.join(", "),
            report.recovery_seconds,
            seen_by_logged_in.unwrap_or_default()
        )
    } else {
        problems.join("; ")
    };
    output.check = Some(Check::Outage(report));
    output
}

/// The flow can end before the app works again (a client that keeps a dead server out for a
/// while): new users keep trying to log in until one does or `recovery_timeout` has passed since
/// the server returned, so "did not recover" always means the whole promised wait. Returns when
/// (since t0) the first login succeeded.
async fn login_after_the_flow(
    cfg: &OutageConfig,
    env: &CellEnv<'_>,
    base: &str,
    t0: Instant,
    up: Duration,
) -> Option<Duration> {
    let deadline = up + cfg.recovery_timeout.0;
    let mut tried = 0;
    while t0.elapsed() < deadline && !env.cancel.is_cancelled() {
        let name = format!("{}r{tried}", env.user_tag);
        tried += 1;
        let mut user = env.browser(base, tried - 1, name, cfg.flow.request_timeout.0);
        if user.sign_up_and_log_in().await.is_ok() {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
    None
}

/// Pause between new users' login attempts after the flow, while waiting for recovery.
const RETRY_INTERVAL: Duration = Duration::from_millis(250);

fn analyze(
    events: &[Event],
    down: Duration,
    up: Duration,
    recovery_timeout: Duration,
) -> OutageReport {
    let mut during: BTreeMap<&str, StepDuringOutage> = BTreeMap::new();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    // Requests that started while the server was down (one started just before the kill may
    // still have been served by it).
    for e in events
        .iter()
        .filter(|e| e.at.saturating_sub(e.latency) >= down && e.at.saturating_sub(e.latency) < up)
    {
        let s = during.entry(e.step).or_insert_with(|| StepDuringOutage {
            step: e.step.to_string(),
            ok: 0,
            errors: 0,
            max_latency_ms: 0.0,
        });
        if e.ok {
            s.ok += 1;
        } else {
            s.errors += 1;
        }
        s.max_latency_ms = s.max_latency_ms.max(e.latency.as_secs_f64() * 1000.0);
        *statuses
            .entry(e.status.map_or("no answer".into(), |c| c.to_string()))
            .or_default() += 1;
    }
    let first_login_after = events
        .iter()
        .filter(|e| e.at.saturating_sub(e.latency) >= up && e.ok && e.step == "login")
        .map(|e| e.at)
        .min();
    let recovery = first_login_after.map(|t| (t - up).as_secs_f64());
    let mut steps: Vec<StepDuringOutage> = during.into_values().collect();
    steps.sort_by_key(|s| STEP_NAMES.iter().position(|n| *n == s.step));
    OutageReport {
        down_at_seconds: down.as_secs_f64(),
        down_for_seconds: (up - down).as_secs_f64(),
        available_during: steps.iter().all(|s| s.errors == 0) && !steps.is_empty(),
        during: steps,
        statuses_during: statuses,
        recovery_seconds: recovery.unwrap_or(-1.0),
        recovered: recovery.is_some_and(|r| r <= recovery_timeout.as_secs_f64()),
        logged_in: None,
        fault: None,
        promise: None,
        failover_seconds: None,
        promoted: None,
        logins_failed_seconds: 0.0,
        replica_behind_bytes: None,
        caught_up_seconds: None,
    }
}

/// The node `name` names, with the role it was started in: `primary` (or the first node's own
/// name) is the cell's server.
fn faulted_node<'e>(
    server: &'e mut dyn RunningServer,
    others: &'e mut [crate::server::Node],
    topology: crate::server::Topology,
    name: &str,
) -> Option<(&'e mut dyn RunningServer, Role)> {
    let first = if topology.is_cluster() {
        "shard-1"
    } else {
        "primary"
    };
    if name == "primary" || name == first {
        return Some((server, Role::Primary));
    }
    let node = others.iter_mut().find(|n| n.name == name)?;
    Some((node.server.as_mut(), node.role))
}

async fn inflict(
    server: &mut dyn RunningServer,
    fault: FaultKind,
    repl: &mut ReplicaWatch,
) -> crate::error::Result<()> {
    match fault {
        FaultKind::Kill => server.stop(StopKind::Kill).await,
        FaultKind::Stop => server.stop(StopKind::Graceful).await,
        FaultKind::Detach => replicaof(server, None).await,
        FaultKind::Pause => server.freeze(true).await,
        FaultKind::Lag => {
            // A port of ours that accepts connections (the kernel's backlog) and never answers:
            // the replica keeps waiting for its PING reply, still a replica, and gets nothing.
            let sink = std::net::TcpListener::bind(("127.0.0.1", 0))
                .and_then(|l| Ok((l.local_addr()?.port(), l)));
            let (port, sink) =
                sink.map_err(|e| crate::error::Error::io("a port for the cut-off replica", e))?;
            repl.sink = Some(sink);
            replicaof(server, Some(port)).await
        }
    }
}

async fn repair(
    server: &mut dyn RunningServer,
    fault: FaultKind,
    primary_port: u16,
    repl: &mut ReplicaWatch,
) -> crate::error::Result<()> {
    match fault {
        FaultKind::Kill | FaultKind::Stop => server.restart(None).await,
        FaultKind::Detach => replicaof(server, Some(primary_port)).await,
        FaultKind::Pause => server.freeze(false).await,
        FaultKind::Lag => {
            let back = replicaof(server, Some(primary_port)).await;
            repl.sink = None;
            back
        }
    }
}

/// How far a faulted replica fell behind its primary, and how long it took to catch up.
struct ReplicaWatch {
    /// The primary's endpoint, when the faulted node is a replica (None: nothing to watch).
    primary: Option<Endpoint>,
    /// The listener a lagging replica is pointed at, held until it is pointed back.
    sink: Option<std::net::TcpListener>,
    behind: Option<u64>,
    caught_up: Option<Duration>,
}

/// How often a catching-up replica's offset is read.
const CATCH_UP_POLL: Duration = Duration::from_millis(20);

impl ReplicaWatch {
    fn new(role: Role, primary: &Endpoint) -> ReplicaWatch {
        ReplicaWatch {
            primary: (role == Role::Replica).then(|| primary.clone()),
            sink: None,
            behind: None,
            caught_up: None,
        }
    }

    /// At the end of the fault: the primary's offset minus the replica's (a dead or frozen
    /// replica has none).
    async fn measure_lag(&mut self, replica: &Endpoint) {
        let Some(primary) = &self.primary else { return };
        let (Some(r), Some(p)) = (
            replication_state(replica).await,
            replication_state(primary).await,
        ) else {
            return;
        };
        self.behind = Some(p.offset.saturating_sub(r.offset));
    }

    /// After the repair: until the replica is linked again and has applied everything the
    /// primary had produced when the repair began (or the flow ends).
    async fn measure_catch_up(&mut self, replica: &Endpoint, done: CancellationToken) {
        let Some(primary) = &self.primary else { return };
        let started = Instant::now();
        let Some(target) = replication_state(primary).await.map(|p| p.offset) else {
            return;
        };
        while !done.is_cancelled() {
            if let Some(r) = replication_state(replica).await {
                if r.linked && r.offset >= target {
                    self.caught_up = Some(started.elapsed());
                    return;
                }
            }
            tokio::time::sleep(CATCH_UP_POLL).await;
        }
    }
}

/// `REPLICAOF NO ONE`, or `REPLICAOF 127.0.0.1 PORT`.
async fn replicaof(server: &dyn RunningServer, primary: Option<u16>) -> crate::error::Result<()> {
    let mut cmd = redis::cmd("REPLICAOF");
    match primary {
        Some(port) => cmd.arg("127.0.0.1").arg(port),
        None => cmd.arg("NO").arg("ONE"),
    };
    query::<()>(&server.endpoint(), &cmd)
        .await
        .map_err(|e| crate::error::Error::Server {
            server: server.spec().server.to_string(),
            message: format!("REPLICAOF: {e}"),
        })
}

fn fault_verb(fault: FaultKind) -> &'static str {
    match fault {
        FaultKind::Kill => "killed",
        FaultKind::Stop => "stopped",
        FaultKind::Detach => "detached",
        FaultKind::Pause => "paused",
        FaultKind::Lag => "cut off from the primary",
    }
}

/// As written in a matrix.
fn fault_name(fault: FaultKind) -> String {
    serde_json::to_value(fault)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// From the first failed login that started after the fault to the end of the last one.
fn logins_failed_for(events: &[Event], fault: Duration) -> f64 {
    let failed: Vec<&Event> = events
        .iter()
        .filter(|e| e.step == "login" && !e.ok && e.at.saturating_sub(e.latency) >= fault)
        .collect();
    let first = failed.iter().map(|e| e.at.saturating_sub(e.latency)).min();
    let last = failed.iter().map(|e| e.at).max();
    match (first, last) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => 0.0,
    }
}

/// One authenticated read by a user who logged in before the outage.
struct Read {
    /// When it was sent, since the flow started.
    sent: Duration,
    latency: Duration,
    state: SessionState,
    status: Option<u16>,
}

/// Read as this user every `READ_INTERVAL` until the flow is over.
async fn keep_reading(user: &Browser, t0: Instant, done: CancellationToken) -> Vec<Read> {
    let mut reads = Vec::new();
    while !done.is_cancelled() {
        let sent = t0.elapsed();
        let (state, status) = user.read().await;
        reads.push(Read {
            sent,
            latency: t0.elapsed() - sent,
            state,
            status,
        });
        tokio::select! {
            _ = done.cancelled() => break,
            _ = tokio::time::sleep(READ_INTERVAL) => {}
        }
    }
    reads
}

/// What the logged-in users got before, during and after the outage, and second by second.
fn logged_in_users(reads: &[Read], users: u32, down: Duration, up: Duration) -> LoggedInUsers {
    let (mut before, mut during, mut after) = Default::default();
    let mut per_second: BTreeMap<u64, ReadsInSecond> = BTreeMap::new();
    for r in reads {
        let phase: &mut ReadsSeen = if r.sent < down {
            &mut before
        } else if r.sent < up {
            &mut during
        } else {
            &mut after
        };
        let second = per_second
            .entry(r.sent.as_secs())
            .or_insert_with(|| ReadsInSecond {
                second: r.sent.as_secs(),
                ..Default::default()
            });
        match r.state {
            SessionState::Valid => {
                phase.ok += 1;
                second.ok += 1;
            }
            SessionState::Lost(_) => {
                phase.logged_out += 1;
                second.logged_out += 1;
            }
            SessionState::Error(_) => {
                phase.failed += 1;
                second.failed += 1;
            }
        }
        *phase
            .statuses
            .entry(r.status.map_or("no answer".into(), |c| c.to_string()))
            .or_default() += 1;
        phase.max_latency_ms = phase.max_latency_ms.max(r.latency.as_secs_f64() * 1000.0);
    }
    LoggedInUsers {
        users: users as u64,
        before,
        during,
        after,
        per_second: per_second.into_values().collect(),
        sessions_lost: 0,
    }
}

impl super::Scenario for OutageConfig {
    const KIND: &'static str = "outage";
    const FIELDS: &'static [&'static str] = &[
        "duration",
        "users",
        "reads",
        "hatch_rate",
        "down_at",
        "down_for",
        "recovery_timeout",
        "expect_available",
        "logged_in_users",
        "node",
        "fault",
    ];
    const NEEDS_APP: bool = true;
    const OPS: Option<&'static [&'static str]> = Some(STEP_NAMES);
    const CHECK_METRICS: &'static [&'static str] = &["recovery_seconds"];

    fn from_params(p: &ScenarioParams) -> Result<Self, String> {
        OutageConfig::resolve(p)
    }
    fn planned_seconds(&self) -> u64 {
        self.flow.planned_seconds()
    }
    async fn run(&self, env: &mut CellEnv<'_>) -> ScenarioOutput {
        run(self, env).await
    }
}
