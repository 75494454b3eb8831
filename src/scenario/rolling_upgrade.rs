//! `rolling-upgrade`: the documented zero-downtime upgrade, under login traffic. The app reaches
//! the cell's server (`from`) through a service address (`relay.rs`); users log in and the
//! harness writes raw keys; `to` (another version or family) starts as a replica of `from`.
//! If it syncs, it is made writable and, while the login flow runs, the service address moves
//! to it, it is promoted and `from` is shut down. Then every session is read through the app
//! and every key from `to`. What happened (did it sync, with `to`'s own log lines if not; what
//! was kept; how long logins failed) is compared with what the procedure promises
//! (`promise::ROLLING_UPGRADE_PROMISE`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;

use super::browser::{Browser, SessionState};
use super::login_flow::{self, FlowLength, LoginFlowConfig};
use super::relay::Relay;
use super::resp::RespConn;
use super::server_upgrade::refusal_signature;
use super::typed_keys::{keys, read_back, server_name, write, Key, Seen};
use super::{CellEnv, ScenarioOutput};
use crate::config::scenario_file::{at_least_one, ScenarioParams};
use crate::config::HumanDuration;
use crate::results::checks::rolling::{RollingOutcome, RollingUpgradeCheck};
use crate::results::checks::upgrade::Items;
use crate::results::checks::Check;
use crate::server::deployment::{info, info_field, query, Addresses};
use crate::server::provision::Provisioner;
use crate::server::{Endpoint, ServerRef, ServerSpec, StopKind};
use crate::target::app::{AppCode, AppProcess};
use crate::target::exceptions;

/// How long `to` may take to finish its initial sync (a full sync of a small dataset takes
/// well under a second; a replica that cannot load the primary's snapshot retries forever).
const SYNC_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollingUpgradeConfig {
    /// The login traffic that runs through the switch-over.
    #[serde(flatten)]
    pub flow: LoginFlowConfig,
    /// The server attached as a replica and switched over to.
    pub to: ServerRef,
    /// Users logged in before `to` is attached, checked after the switch.
    pub logged_in_users: u32,
    /// Raw keys written per type before `to` is attached.
    pub keys: u64,
    /// When the service address moves, seconds into the login traffic.
    pub switch_at: HumanDuration,
}

impl RollingUpgradeConfig {
    pub fn resolve(p: &ScenarioParams) -> Result<Self, String> {
        let secs = |s| HumanDuration(Duration::from_secs(s));
        let mut p = p.clone();
        p.duration = Some(p.duration.unwrap_or(secs(8)));
        p.iterations = None;
        // Failed requests during the switch are measured and reported, not the flow's verdict.
        p.max_error_rate = Some(1.0);
        let flow = LoginFlowConfig::resolve(&p)?;
        let FlowLength::Duration(total) = flow.length else {
            unreachable!("duration set above")
        };
        let switch_at = p.switch_at.unwrap_or(secs(3));
        if switch_at.0 >= total.0 {
            return Err(format!(
                "field `duration` ({total}) must be longer than switch_at ({switch_at}): the \
                 traffic runs through the switch"
            ));
        }
        Ok(RollingUpgradeConfig {
            flow,
            to: p
                .to
                .clone()
                .ok_or("field `to` missing: the server attached as a replica")?,
            logged_in_users: at_least_one(p.logged_in_users, "logged_in_users", 10)?,
            keys: at_least_one(p.keyspace, "keyspace", 10)?,
            switch_at,
        })
    }
}

impl super::Scenario for RollingUpgradeConfig {
    const KIND: &'static str = "rolling-upgrade";
    const FIELDS: &'static [&'static str] = &[
        "to",
        "duration",
        "users",
        "reads",
        "hatch_rate",
        "logged_in_users",
        "keyspace",
        "switch_at",
    ];
    const NEEDS_APP: bool = true;
    const OPS: Option<&'static [&'static str]> = Some(login_flow::STEP_NAMES);
    const CHECK_METRICS: &'static [&'static str] = &["lost", "sessions_lost"];

    fn from_params(p: &ScenarioParams) -> Result<Self, String> {
        RollingUpgradeConfig::resolve(p)
    }
    fn planned_seconds(&self) -> u64 {
        self.flow.planned_seconds()
    }
    async fn run(&self, env: &mut CellEnv<'_>) -> ScenarioOutput {
        run(self, env).await
    }
}

/// `to`'s spec: the cell's server settings and persistence, following `from`.
fn replica_spec(from: &ServerSpec, to: &ServerRef, from_port: u16) -> ServerSpec {
    ServerSpec {
        server: to.clone(),
        ..crate::server::deployment::replica_spec(from, from_port)
    }
}

async fn dbsize(endpoint: &Endpoint) -> Option<u64> {
    query(endpoint, &redis::cmd("DBSIZE")).await.ok()
}

/// Wait until `to` reports its link to `from` up and holds as many keys (the docs' check).
async fn wait_synced(from: &Endpoint, to: &Endpoint) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < SYNC_TIMEOUT {
        let replication = info(to, "replication").await;
        if info_field(&replication, "master_link_status") == Some("up") {
            let (a, b) = (dbsize(from).await, dbsize(to).await);
            if a.is_some() && a == b {
                return Some(t.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Read every key back from `to`, by type.
async fn check_keys(
    endpoint: &Endpoint,
    written: &[Key],
    timeout: Duration,
) -> BTreeMap<String, Items> {
    let mut by_type: BTreeMap<String, Items> = BTreeMap::new();
    for key in written {
        by_type.entry(key.kind.to_string()).or_default().written += 1;
    }
    let mut conn = RespConn::connect(endpoint, timeout).await.ok();
    for key in written {
        let items = by_type.entry(key.kind.into()).or_default();
        let seen = match conn.as_mut() {
            Some(c) => read_back(c, key).await,
            None => Err("no connection".into()),
        };
        match seen {
            Ok(Seen::Same) => items.kept += 1,
            Ok(Seen::Changed(_)) => items.changed += 1,
            Ok(Seen::Missing) => items.lost += 1,
            Err(_) => items.unknown += 1,
        }
    }
    by_type
}

/// `base` + `suffix` (cell names contain dots, as in `redis@7.4`).
fn log_path(base: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

pub async fn run(cfg: &RollingUpgradeConfig, env: &mut CellEnv<'_>) -> ScenarioOutput {
    let (Some(stack_name), Some(settings_name)) =
        (env.stack_name.clone(), env.settings_name.clone())
    else {
        return ScenarioOutput::infra(
            "rolling-upgrade needs the bundled app (a stack and settings axis): the app must \
             reach the server through a service address the harness can move"
                .into(),
        );
    };
    let cache = crate::server::provision::default_cache_dir();
    let to_ref = cfg.to.clone();
    let stack_spec = env.stacks.get(&stack_name).cloned();
    let target = env.target.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        let binary = Provisioner::with_default_cache()
            .provision(&to_ref)
            .map_err(|e| format!("provisioning `to`: {e}"))?;
        let stack = match stack_spec {
            Some(spec) => crate::target::project::requirements_for(&target, &spec)
                .and_then(|r| {
                    crate::stack::provision(&stack_name, &spec, &cache, r)
                        .map_err(|e| e.to_string())
                })
                .map_err(|e| format!("provisioning the stack: {e}"))?,
            None => return Err(format!("no [stacks.\"{stack_name}\"] in the matrix")),
        };
        let code = AppCode::of(&target)?;
        Ok((binary, stack, code))
    })
    .await;
    let (to_binary, stack, code) = match prepared {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return ScenarioOutput::infra(e),
        Err(e) => return ScenarioOutput::infra(e.to_string()),
    };

    // The app's server address is the relay's: the cell's settings with {server} moved there.
    let from_endpoint = env.server.endpoint();
    let relay = match Relay::start(from_endpoint.addr).await {
        Ok(r) => r,
        Err(e) => return ScenarioOutput::infra(format!("starting the service address: {e}")),
    };
    let family = env.server.spec().server.family;
    let password = env.server.spec().settings.requirepass.clone();
    let via_relay = Addresses {
        primary: family
            .url(relay.port(), password.as_deref())
            .trim_end_matches('/')
            .to_string(),
        port: relay.port(),
        ..Default::default()
    };
    let settings = match env
        .settings
        .get(&settings_name)
        .map(|t| crate::target::django_settings(t, &via_relay))
    {
        Some(Ok(s)) => s,
        Some(Err(e)) => return ScenarioOutput::infra(format!("settings `{settings_name}`: {e}")),
        None => return ScenarioOutput::infra(format!("no [settings.\"{settings_name}\"]")),
    };
    let mut app =
        match AppProcess::start_on(&stack, &code, env.target, &settings, env.app_db.as_deref())
            .await
        {
            Ok(a) => a,
            Err(e) => {
                return ScenarioOutput::infra(format!(
                    "starting the app on the service address: {e}"
                ))
            }
        };
    let base = app.base_url();
    let timeout = cfg.flow.request_timeout.0;

    let output = switch_over(cfg, env, &relay, &base, &to_binary, timeout).await;

    let app_log = log_path(&env.log_base, ".switch-app.log");
    app.stop(Some(&app_log)).await;
    let mut output = output;
    if let Some(Check::RollingUpgrade(check)) = output.check.as_mut() {
        let text = std::fs::read_to_string(&app_log).unwrap_or_default();
        check.app_exceptions = exceptions::from_log(&text, |p| env.target.step_of_path(p))
            .into_iter()
            .map(|e| format!("{} (x{})", e.signature, e.count))
            .collect();
    }
    output
}

/// Everything after the app is up on the relay: logins, keys, `to` attached, the switch under
/// traffic, the checks. `to` is stopped, its log kept and its server removed before returning.
async fn switch_over(
    cfg: &RollingUpgradeConfig,
    env: &mut CellEnv<'_>,
    relay: &Relay,
    base: &str,
    to_binary: &crate::server::ProvisionedServer,
    timeout: Duration,
) -> ScenarioOutput {
    let from_endpoint = env.server.endpoint();
    let mut conn = match RespConn::connect(&from_endpoint, timeout).await {
        Ok(c) => c,
        Err(e) => return ScenarioOutput::infra(format!("connecting to `from`: {e}")),
    };
    let from = server_name(&mut conn)
        .await
        .unwrap_or_else(|e| format!("? ({e})"));

    // 1. Users log in through the app (on `from`, via the relay); raw keys go to `from`.
    let mut browsers: Vec<Browser> = (0..cfg.logged_in_users)
        .map(|i| env.browser(base, i as usize, format!("{}r{i}", env.user_tag), timeout))
        .collect();
    let logins = join_all(browsers.iter_mut().map(|b| b.sign_up_and_log_in())).await;
    if let Some(Err(e)) = logins.iter().find(|l| l.is_err()) {
        let failed = logins.iter().filter(|l| l.is_err()).count();
        return ScenarioOutput {
            reason: format!(
                "{failed} of {} users could not log in before the upgrade ({e})",
                logins.len()
            ),
            ..Default::default()
        };
    }
    let mut written = Vec::new();
    for key in keys(&env.key_prefix, cfg.keys) {
        match write(&mut conn, &key).await {
            Ok(()) => written.push(key),
            Err(e) => return ScenarioOutput::infra(format!("writing {} to `from`: {e}", key.name)),
        }
    }
    drop(conn);

    // 2. `to` as a replica of `from`, on the cell's runtime; wait for the initial sync.
    let spec = replica_spec(env.server.spec(), &cfg.to, env.server.port());
    let mut check = RollingUpgradeCheck {
        from,
        to: format!("{} {}", to_binary.family.name(), to_binary.version),
        persistence: env.server.spec().persistence.to_string(),
        outcome: RollingOutcome::RefusedToStart,
        signature: None,
        sync_ms: None,
        keys_on_from: dbsize(&from_endpoint).await.unwrap_or(0),
        keys_on_to: 0,
        switch_at_seconds: 0.0,
        sessions: Items {
            written: browsers.len() as u64,
            ..Default::default()
        },
        keys: BTreeMap::new(),
        logins_failed_seconds: 0.0,
        failed_after_switch: 0,
        requests_after_switch: 0,
        app_exceptions: vec![],
        promise: super::promise::ROLLING_UPGRADE_PROMISE.to_string(),
        matches: false,
    };
    let mut to = match env.starter.start_other(&spec, to_binary, "to").await {
        Ok(s) => s,
        Err(e) => {
            check.signature = Some(e.to_string());
            return without_traffic(check);
        }
    };
    let to_endpoint = to.endpoint();
    if let Ok(mut c) = RespConn::connect(&to_endpoint, timeout).await {
        if let Ok(name) = server_name(&mut c).await {
            check.to = name;
        }
    }
    let synced = wait_synced(&from_endpoint, &to_endpoint).await;
    check.keys_on_to = dbsize(&to_endpoint).await.unwrap_or(0);
    let mut output = match synced {
        None => {
            check.outcome = RollingOutcome::SyncFailed;
            check.signature =
                refusal_signature(&to.log_tail(200).await).or_else(|| Some("no log line".into()));
            without_traffic(check)
        }
        Some(took) => {
            check.sync_ms = Some(took.as_secs_f64() * 1000.0);
            traffic_and_switch(
                cfg,
                env,
                relay,
                base,
                &to_endpoint,
                browsers,
                &written,
                check,
            )
            .await
        }
    };
    let _ = to.stop(StopKind::Graceful).await;
    let _ = to.save_log(&log_path(&env.log_base, ".to.log")).await;
    if let Err(e) = to.remove().await {
        output.reason.push_str(&format!("; removing `to`: {e}"));
    }
    output
}

/// 3–5: `to` writable, the login flow running, the service address moved at `switch_at`,
/// `to` promoted and `from` shut down; then sessions and keys checked.
#[allow(clippy::too_many_arguments)]
async fn traffic_and_switch(
    cfg: &RollingUpgradeConfig,
    env: &mut CellEnv<'_>,
    relay: &Relay,
    base: &str,
    to_endpoint: &Endpoint,
    browsers: Vec<Browser>,
    written: &[Key],
    mut check: RollingUpgradeCheck,
) -> ScenarioOutput {
    let mut problems = Vec::new();
    if let Err(e) = query::<()>(
        to_endpoint,
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("replica-read-only")
            .arg("no"),
    )
    .await
    {
        problems.push(format!("CONFIG SET replica-read-only no on `to`: {e}"));
    }
    let t0 = Instant::now();
    let server = &mut *env.server;
    let switch = async {
        tokio::time::sleep(cfg.switch_at.0).await;
        let at = t0.elapsed();
        relay.switch_to(to_endpoint.addr);
        let promoted = query::<()>(to_endpoint, redis::cmd("REPLICAOF").arg("NO").arg("ONE")).await;
        let stopped = server.stop(StopKind::Graceful).await;
        (at, promoted, stopped)
    };
    // Field by field: `env.server` is borrowed by the switch-over above.
    let users = login_flow::Users {
        target: env.target,
        tag: &env.user_tag,
        accounts: &env.accounts,
    };
    let flow = login_flow::run_with_events(
        &cfg.flow,
        base,
        &users,
        env.cancel.clone(),
        env.progress.clone(),
        true,
    );
    let ((mut output, events), (at, promoted, stopped)) = tokio::join!(flow, switch);
    if let Err(e) = promoted {
        problems.push(format!("REPLICAOF NO ONE on `to`: {e}"));
    }
    match stopped {
        Ok(()) => output.primary_stopped = true,
        Err(e) => problems.push(format!("shutting `from` down: {e}")),
    }
    check.outcome = RollingOutcome::SwitchedOver;
    check.switch_at_seconds = at.as_secs_f64();
    // Requests that completed after the switch, those in flight at it included: they are the
    // ones whose connection the switch closed.
    let after: Vec<_> = events.iter().filter(|e| e.at >= at).collect();
    check.requests_after_switch = after.len() as u64;
    check.failed_after_switch = after.iter().filter(|e| !e.ok).count() as u64;
    check.logins_failed_seconds = logins_failed_for(&after);

    // Every session logged in on `from`, read through the app (now on `to`).
    for b in &browsers {
        let mut state = b.check().await;
        if matches!(state, SessionState::Error(_)) {
            // A pooled connection the switch closed may fail once.
            tokio::time::sleep(Duration::from_millis(500)).await;
            state = b.check().await;
        }
        match state {
            SessionState::Valid => check.sessions.kept += 1,
            SessionState::Lost(_) => check.sessions.lost += 1,
            SessionState::Error(_) => check.sessions.unknown += 1,
        }
    }
    check.keys = check_keys(to_endpoint, written, cfg.flow.request_timeout.0).await;
    let (passed, reason) = judge(&mut check, &problems);
    output.passed = passed;
    output.reason = reason;
    output.check = Some(Check::RollingUpgrade(check));
    output
}

/// From the start of the first failed login to the end of the last one.
fn logins_failed_for(events: &[&login_flow::Event]) -> f64 {
    let failed = || events.iter().filter(|e| e.step == "login" && !e.ok);
    let first = failed().map(|e| e.at.saturating_sub(e.latency)).min();
    let last = failed().map(|e| e.at).max();
    match (first, last) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => 0.0,
    }
}

/// Judge the check against the promise: pass when `to` synced and took over with nothing lost
/// and no request failing, as the procedure promises; `problems` are steps that went wrong.
fn judge(check: &mut RollingUpgradeCheck, problems: &[String]) -> (bool, String) {
    let keys = check.all_keys();
    let transition = format!("{} → {} on {}", check.from, check.to, check.persistence);
    if check.outcome != RollingOutcome::SwitchedOver {
        return (
            false,
            format!(
                "{transition}: `to` {}: {}",
                check.outcome.words(),
                check.signature.as_deref().unwrap_or("no log line")
            ),
        );
    }
    let nothing_lost = check.sessions.kept == check.sessions.written && keys.kept == keys.written;
    let no_downtime = check.failed_after_switch == 0;
    check.matches = nothing_lost && no_downtime;
    let mut reason = format!(
        "{transition}: synced in {:.2}s; sessions {}/{} kept, keys {}/{} kept; logins failed \
         for {:.2}s ({} of {} requests after the switch failed)",
        check.sync_ms.unwrap_or(0.0) / 1000.0,
        check.sessions.kept,
        check.sessions.written,
        keys.kept,
        keys.written,
        check.logins_failed_seconds,
        check.failed_after_switch,
        check.requests_after_switch
    );
    for p in problems {
        reason.push_str(&format!("; {p}"));
    }
    if !check.matches {
        reason.push_str(" (the procedure promises no loss and no downtime)");
    }
    (check.matches && problems.is_empty(), reason)
}

/// A cell's output from its check alone (no traffic ran).
fn without_traffic(mut check: RollingUpgradeCheck) -> ScenarioOutput {
    let (passed, reason) = judge(&mut check, &[]);
    ScenarioOutput {
        passed,
        reason,
        check: Some(Check::RollingUpgrade(check)),
        ..Default::default()
    }
}
