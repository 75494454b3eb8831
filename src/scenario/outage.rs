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
use crate::config::scenario_file::ScenarioParams;
use crate::config::HumanDuration;
use crate::results::checks::{
    Check, LoggedInUsers, OutageReport, ReadsInSecond, ReadsSeen, StepDuringOutage,
};
use crate::server::StopKind;

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
        })
    }
}

pub async fn run(cfg: &OutageConfig, env: &mut CellEnv<'_>) -> ScenarioOutput {
    let base = env.app_url.clone().expect("outage runs against an app");
    let mut logged_in: Vec<Browser> = (0..cfg.logged_in_users)
        .map(|i| {
            let name = format!("{}l{i}", env.user_tag);
            Browser::new(&base, env.target, name, cfg.flow.request_timeout.0)
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
    let t0 = Instant::now();
    let server = &mut *env.server;
    let fault = async {
        tokio::time::sleep(cfg.down_at.0).await;
        let stopped = server.stop(StopKind::Kill).await;
        // Stamped once the process is gone: from here on nothing can answer.
        let down = t0.elapsed();
        tokio::time::sleep(cfg.down_for.0).await;
        // Stamped when the restart begins: the server may answer before `restart` returns.
        let up = t0.elapsed();
        let up = server.restart(None).await.map(|_| up);
        (down, stopped.and(up))
    };
    let flow_done = CancellationToken::new();
    let flow = async {
        let out = login_flow::run_with_events(
            &cfg.flow,
            &base,
            env.target,
            &env.user_tag,
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
    let ((mut output, events), (down, up), reads) = tokio::join!(flow, fault, reads);
    let up = match up {
        Ok(up) => up,
        Err(e) => {
            output.passed = false;
            output.reason = format!("the server did not come back: {e}");
            return output;
        }
    };
    let mut report = analyze(&events, down, up, cfg.recovery_timeout.0);
    let reads: Vec<Read> = reads.into_iter().flatten().collect();
    report.logged_in =
        (cfg.logged_in_users > 0).then(|| logged_in_users(&reads, cfg.logged_in_users, down, up));
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
