//! `server-upgrade`: the cell's server (`from`) gets users logged in through the app and raw keys
//! of several types (strings, hashes, sets; with and without a TTL) written by the harness; it
//! is stopped the configured way, and `to` (another version or family) is started on the same
//! data directory with the same persistence config. Then every session is checked through the
//! app and every key read back. The outcome is classified from what happened (kept, partially
//! kept, started without the data, refused to start with its own log line), and judged against
//! what the persistence mode promises for that stop (`promise.rs`): a version change that loses
//! what the mode promised to keep fails.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;

use super::browser::{Browser, SessionState};
use super::promise::{self, RestartKind};
use super::resp::RespConn;
use super::typed_keys::{keys, read_back, server_name, write, Seen};
use super::{CellEnv, ScenarioOutput};
use crate::config::scenario_file::{at_least_one, ScenarioParams};
use crate::config::HumanDuration;
use crate::results::checks::upgrade::{Items, UpgradeCheck, UpgradeOutcome};
use crate::results::checks::Check;
use crate::results::failure::Failure;
use crate::results::recorder::{Recorder, Timeline};
use crate::server::provision::Provisioner;
use crate::server::{ServerRef, ServerSpec};

pub const STEPS: &[&str] = &["log-in", "write", "check-session", "check-key"];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerUpgradeConfig {
    /// The server started on `from`'s data (`from` is the cell's `server`).
    pub to: ServerRef,
    /// Users logged in before the switch.
    pub users: u32,
    /// Raw keys written per type.
    pub keys: u64,
    /// How `from` is stopped.
    pub restart: RestartKind,
    pub request_timeout: HumanDuration,
}

impl ServerUpgradeConfig {
    pub fn resolve(p: &ScenarioParams) -> Result<Self, String> {
        Ok(ServerUpgradeConfig {
            to: p
                .to
                .clone()
                .ok_or("field `to` missing: the server to start on the data")?,
            users: at_least_one(p.users, "users", 10)?,
            keys: at_least_one(p.keyspace, "keyspace", 10)?,
            restart: p.restart.unwrap_or(RestartKind::Graceful),
            request_timeout: p
                .op_timeout
                .unwrap_or(HumanDuration(Duration::from_secs(30))),
        })
    }
}

impl super::Scenario for ServerUpgradeConfig {
    const KIND: &'static str = "server-upgrade";
    const FIELDS: &'static [&'static str] = &["to", "users", "keyspace", "restart"];
    const NEEDS_APP: bool = true;
    const OPS: Option<&'static [&'static str]> = Some(STEPS);
    const CHECK_METRICS: &'static [&'static str] = &["lost", "sessions_lost"];

    fn from_params(p: &ScenarioParams) -> Result<Self, String> {
        ServerUpgradeConfig::resolve(p)
    }

    async fn run(&self, env: &mut CellEnv<'_>) -> ScenarioOutput {
        run(self, env).await
    }
}

/// `base` + `suffix` (not `with_extension`: cell names contain dots, as in `redis@7.4`).
fn with_suffix(base: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// The lines of `to`'s own log that say why it stopped, without pid and timestamp: its last two
/// warnings (`#`) after "Server initialized" (where loading the data starts), leaving out the
/// host advisories ("WARNING ..."); else its last two lines (a config error is logged plain).
pub fn refusal_signature(lines: &[String]) -> Option<String> {
    let warnings: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_once(" # ").map(|(_, m)| m.trim()))
        .filter(|m| !m.starts_with("WARNING"))
        .collect();
    let after_init = match warnings.iter().rposition(|m| *m == "Server initialized") {
        Some(i) => &warnings[i + 1..],
        None => &warnings[..],
    };
    let picked: Vec<&str> = if after_init.is_empty() {
        lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect()
    } else {
        after_init.to_vec()
    };
    (!picked.is_empty()).then(|| picked[picked.len().saturating_sub(2)..].join("; "))
}

pub async fn run(cfg: &ServerUpgradeConfig, env: &mut CellEnv<'_>) -> ScenarioOutput {
    let base = env
        .app_url
        .clone()
        .expect("server-upgrade runs against an app");
    if !env.server.can_switch_binary() {
        return ScenarioOutput::infra(format!(
            "the {} runtime cannot start another server binary on the same data yet",
            env.server.identity().runtime
        ));
    }
    // `to` is found (or fetched) before anything is written, so a missing binary is an infra
    // error of the cell, not an outcome.
    let to_ref = cfg.to.clone();
    let to_binary = match tokio::task::spawn_blocking(move || {
        Provisioner::with_default_cache().provision(&to_ref)
    })
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return ScenarioOutput::infra(format!("provisioning `to`: {e}")),
        Err(e) => return ScenarioOutput::infra(format!("provisioning `to`: {e}")),
    };
    let start = Instant::now();
    let mut rec = Recorder::new(STEPS);
    let timeline = std::sync::Mutex::new(Timeline::new(0.0));
    let persistence = env.server.spec().persistence.clone();
    let endpoint = env.server.endpoint();
    let timeout = cfg.request_timeout.0;
    let connect = || RespConn::connect(&endpoint, timeout);
    let mut conn = match connect().await {
        Ok(c) => c,
        Err(e) => return ScenarioOutput::infra(format!("connecting to `from`: {e}")),
    };
    let from = server_name(&mut conn)
        .await
        .unwrap_or_else(|e| format!("? ({e})"));

    // 1. Log users in through the app, and write the raw keys.
    let mut browsers: Vec<Browser> = (0..cfg.users)
        .map(|i| env.browser(&base, i as usize, format!("{}u{i}", env.user_tag), timeout))
        .collect();
    let logins = join_all(browsers.iter_mut().map(|b| async move {
        let t = Instant::now();
        (b.sign_up_and_log_in().await, t.elapsed())
    }))
    .await;
    let mut logged_in = Vec::new();
    for (browser, (outcome, took)) in browsers.into_iter().zip(logins) {
        match outcome {
            Ok(()) => {
                rec.ok(0, took.as_nanos() as u64);
                logged_in.push(browser);
            }
            Err(e) => rec.error(0, e.failure(), || e.to_string()),
        }
    }
    let mut written = Vec::new();
    for key in keys(&env.key_prefix, cfg.keys) {
        let t = Instant::now();
        match write(&mut conn, &key).await {
            Ok(()) => {
                rec.ok(1, t.elapsed().as_nanos() as u64);
                written.push(key);
            }
            Err(e) => rec.error(1, Failure::WriteFailed, || e),
        }
    }
    drop(conn);
    rec.tick(&timeline, start.elapsed().as_secs());

    // 2. Stop `from` the configured way; keep its log; start `to` on the same data.
    let down = Instant::now();
    if let Err(e) = env.server.stop(cfg.restart.stop_kind()).await {
        return ScenarioOutput::infra(format!("stopping `from`: {e}"));
    }
    let from_lines = env.server.log_tail(usize::MAX).await.len();
    let _ = env
        .server
        .save_log(&with_suffix(&env.log_base, ".from.log"))
        .await;
    let to_spec = ServerSpec {
        server: cfg.to.clone(),
        ..env.server.spec().clone()
    };
    let started = env.server.restart_as(to_spec, &to_binary).await;
    let downtime_ms = down.elapsed().as_secs_f64() * 1000.0;
    let to_fallback = format!("{} {}", to_binary.family.name(), to_binary.version);

    // 3. Check every session through the app and every key, if `to` came up.
    let mut sessions = Items {
        written: logged_in.len() as u64,
        ..Default::default()
    };
    let mut by_type: BTreeMap<String, Items> = BTreeMap::new();
    for key in &written {
        by_type.entry(key.kind.to_string()).or_default().written += 1;
    }
    let (to, signature) = match &started {
        Err(_) => {
            let lines = env.server.log_tail(usize::MAX).await;
            let to_lines = lines.get(from_lines..).unwrap_or_default();
            (to_fallback, refusal_signature(to_lines))
        }
        Ok(()) => {
            for b in &logged_in {
                let t = Instant::now();
                let mut state = b.check().await;
                if matches!(state, SessionState::Error(_)) {
                    // A pooled connection to the stopped server may fail once.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    state = b.check().await;
                }
                match state {
                    SessionState::Valid => {
                        sessions.kept += 1;
                        rec.ok(2, t.elapsed().as_nanos() as u64);
                    }
                    SessionState::Lost(status) => {
                        sessions.lost += 1;
                        rec.error(2, Failure::SessionLost, || {
                            format!("HTTP {status} for a user logged in on `from`")
                        });
                    }
                    SessionState::Error(e) => {
                        sessions.unknown += 1;
                        rec.error(2, Failure::CheckFailed, || e.clone());
                    }
                }
            }
            let mut to = to_fallback;
            match connect().await {
                Err(e) => {
                    for key in &written {
                        by_type.entry(key.kind.into()).or_default().unknown += 1;
                    }
                    rec.error(3, Failure::ConnectFailed, || e.to_string());
                }
                Ok(mut conn) => {
                    to = server_name(&mut conn).await.unwrap_or(to);
                    for key in &written {
                        let t = Instant::now();
                        let items = by_type.entry(key.kind.into()).or_default();
                        match read_back(&mut conn, key).await {
                            Ok(Seen::Same) => {
                                items.kept += 1;
                                rec.ok(3, t.elapsed().as_nanos() as u64);
                            }
                            Ok(Seen::Changed(how)) => {
                                items.changed += 1;
                                rec.error(3, Failure::KeyChanged, || {
                                    format!("{} ({}): {how}", key.name, key.kind)
                                });
                            }
                            Ok(Seen::Missing) => {
                                items.lost += 1;
                                rec.error(3, Failure::KeyLost, || {
                                    format!("{} ({}) is gone", key.name, key.kind)
                                });
                            }
                            Err(e) => {
                                items.unknown += 1;
                                rec.error(3, Failure::ReadFailed, || e);
                            }
                        }
                    }
                }
            }
            (to, None)
        }
    };
    rec.flush(&timeline);

    // 4. Classify what happened and judge it against the promises.
    let expected = promise::expect(&persistence, cfg.restart, 0.0, None);
    let sessions_expected =
        promise::expect_sessions(&env.session_engine, &persistence, cfg.restart, 0.0, None);
    let mut check = UpgradeCheck {
        from,
        to,
        persistence: persistence.to_string(),
        restart: cfg.restart,
        outcome: UpgradeOutcome::RefusedToStart,
        signature,
        sessions,
        keys: by_type,
        expected,
        sessions_expected,
        matches: false,
        downtime_ms,
    };
    let total = check.total();
    if started.is_ok() {
        check.outcome = UpgradeOutcome::of(total.written, total.kept);
        check.matches = UpgradeCheck::agrees(check.expected.promise, &check.all_keys())
            && UpgradeCheck::agrees(check.sessions_expected.promise, &check.sessions);
    }
    let (passed, reason) = verdict(&check, &started, cfg.users as u64 + 6 * cfg.keys);
    let window = start.elapsed().as_secs_f64();
    let (ops, errors) = rec.summarize(window);
    ScenarioOutput {
        counts: rec.counts(),
        ops,
        errors,
        timeline: timeline.into_inner().expect("timeline lock").finish(),
        measured_seconds: window,
        passed,
        reason,
        check: Some(Check::Upgrade(check)),
        ..Default::default()
    }
}

/// Pass when `to` started and what came back agrees with what the mode promised.
fn verdict(
    check: &UpgradeCheck,
    started: &crate::error::Result<()>,
    wanted: u64,
) -> (bool, String) {
    let total = check.total();
    let transition = format!(
        "{} → {} on {} after a {:?} stop",
        check.from, check.to, check.persistence, check.restart
    );
    if let Err(e) = started {
        let why = check.signature.clone().unwrap_or_else(|| e.to_string());
        return (false, format!("{transition}: refused to start: {why}"));
    }
    if total.written == 0 {
        return (
            false,
            format!("{transition}: nothing was written before the switch (0 of {wanted})"),
        );
    }
    if total.unknown > 0 {
        return (
            false,
            format!(
                "{transition}: {} of {} items could not be checked",
                total.unknown, total.written
            ),
        );
    }
    let keys = check.all_keys();
    let summary = format!(
        "{transition}: {}; sessions {}/{} kept (expected {:?}), keys {}/{} kept, {} changed \
         (expected {:?}: {})",
        check.outcome.words(),
        check.sessions.kept,
        check.sessions.written,
        check.sessions_expected.promise,
        keys.kept,
        keys.written,
        keys.changed,
        check.expected.promise,
        check.expected.because
    );
    (check.matches, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_what_to_logged_after_initializing() {
        let lines: Vec<String> = [
            "7:C 23 Nov 2026 14:00:00.001 # Redis version=6.2.14, bits=64",
            "7:M 23 Nov 2026 14:00:00.009 # Server initialized",
            "7:M 23 Nov 2026 14:00:00.010 # WARNING Memory overcommit must be enabled!",
            "7:M 23 Nov 2026 14:00:00.010 # Can't handle RDB format version 12",
            "7:M 23 Nov 2026 14:00:00.010 # Fatal error loading the DB: Invalid argument. Exiting.",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            refusal_signature(&lines).as_deref(),
            Some("Can't handle RDB format version 12; Fatal error loading the DB: Invalid argument. Exiting.")
        );
        let config: Vec<String> = [
            "*** FATAL CONFIG FILE ERROR ***",
            ">>> 'x y'",
            "Bad directive",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            refusal_signature(&config).as_deref(),
            Some(">>> 'x y'; Bad directive")
        );
        assert_eq!(refusal_signature(&[]), None);
    }

    #[test]
    fn outcomes_come_from_counts() {
        assert_eq!(UpgradeOutcome::of(10, 10), UpgradeOutcome::Kept);
        assert_eq!(UpgradeOutcome::of(10, 3), UpgradeOutcome::PartiallyKept);
        assert_eq!(
            UpgradeOutcome::of(10, 0),
            UpgradeOutcome::StartedWithoutData
        );
    }
}
