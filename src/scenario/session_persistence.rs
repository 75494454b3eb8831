//! `session-persistence`: users log in through the app, the server is restarted (graceful,
//! SHUTDOWN NOSAVE, SIGKILL, optionally after a delay and with a changed config), and each
//! user's session is checked with its own cookie. The result says how many survived and whether
//! that is what the persistence mode and session engine promise.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;

use super::browser::{Browser, SessionState};
use super::promise::{self, RestartKind};
use super::{CellEnv, ScenarioOutput};
use crate::config::scenario_file::{at_least_one, ScenarioParams};
use crate::config::HumanDuration;
use crate::results::checks::{Check, PersistenceCheck};
use crate::results::failure::Failure;
use crate::results::recorder::{Recorder, Timeline};
use crate::server::Persistence;

pub const STEPS: &[&str] = &["log-in", "check-after"];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestartConfig {
    pub restart: RestartKind,
    /// Wait this long after the last write before stopping the server.
    pub restart_delay: HumanDuration,
    /// Restart with this persistence instead of the cell's.
    pub restart_persistence: Option<Persistence>,
}

impl RestartConfig {
    pub fn resolve(p: &ScenarioParams) -> RestartConfig {
        RestartConfig {
            restart: p.restart.unwrap_or(RestartKind::Graceful),
            restart_delay: p.restart_delay.unwrap_or(HumanDuration(Duration::ZERO)),
            restart_persistence: p.restart_persistence.clone(),
        }
    }

    /// Wait, stop the server this way, start it again on the same data dir. Returns the
    /// downtime in ms, or why the restart failed.
    pub async fn apply(&self, env: &mut CellEnv<'_>) -> Result<f64, String> {
        tokio::time::sleep(self.restart_delay.0).await;
        let down = Instant::now();
        env.server
            .stop(self.restart.stop_kind())
            .await
            .map_err(|e| e.to_string())?;
        let new_spec = self.restart_persistence.as_ref().map(|p| {
            let mut spec = env.server.spec().clone();
            spec.persistence = p.clone();
            spec
        });
        env.server
            .restart(new_spec)
            .await
            .map_err(|e| format!("restart failed: {e}"))?;
        Ok(down.elapsed().as_secs_f64() * 1000.0)
    }

    /// What `persistence` promises for this restart; for sessions, given the session engine.
    pub fn expectation(
        &self,
        persistence: &Persistence,
        session_engine: Option<&str>,
    ) -> promise::Expectation {
        let delay = self.restart_delay.0.as_secs_f64();
        let with = self.restart_persistence.as_ref();
        match session_engine {
            Some(engine) => {
                promise::expect_sessions(engine, persistence, self.restart, delay, with)
            }
            None => promise::expect(persistence, self.restart, delay, with),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionPersistenceConfig {
    pub users: u32,
    #[serde(flatten)]
    pub restart: RestartConfig,
    pub request_timeout: HumanDuration,
}

impl SessionPersistenceConfig {
    pub fn resolve(p: &ScenarioParams) -> Result<Self, String> {
        Ok(SessionPersistenceConfig {
            users: at_least_one(p.users, "users", 20)?,
            restart: RestartConfig::resolve(p),
            request_timeout: p
                .op_timeout
                .unwrap_or(HumanDuration(Duration::from_secs(30))),
        })
    }
}

pub async fn run(cfg: &SessionPersistenceConfig, env: &mut CellEnv<'_>) -> ScenarioOutput {
    let base = env
        .app_url
        .clone()
        .expect("session-persistence runs against an app");
    let start = Instant::now();
    let mut rec = Recorder::new(STEPS);
    let timeline = std::sync::Mutex::new(Timeline::new(0.0));
    let persistence_before = env.server.spec().persistence.clone();

    // 1. Log everyone in, concurrently.
    let mut browsers: Vec<Browser> = (0..cfg.users)
        .map(|i| {
            env.browser(
                &base,
                i as usize,
                format!("{}s{i}", env.user_tag),
                cfg.request_timeout.0,
            )
        })
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
    rec.tick(&timeline, start.elapsed().as_secs());

    // 2. Restart the server.
    let restart_at = (start.elapsed() + cfg.restart.restart_delay.0).as_secs_f64();
    let restart = cfg.restart.apply(env).await;
    // 3. Check every session with its own cookie; an error (the app could not answer) is
    // retried once after a pause, since a pooled connection to the old server may fail once.
    let mut kept = 0;
    let mut lost = 0;
    let mut unknown = 0;
    let mut transient = 0;
    if restart.is_ok() {
        for b in &logged_in {
            let t = Instant::now();
            let mut state = b.check().await;
            if matches!(state, SessionState::Error(_)) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                state = b.check().await;
                if !matches!(state, SessionState::Error(_)) {
                    transient += 1;
                }
            }
            match state {
                SessionState::Valid => {
                    kept += 1;
                    rec.ok(1, t.elapsed().as_nanos() as u64);
                }
                SessionState::Lost(status) => {
                    lost += 1;
                    rec.error(1, Failure::SessionLost, || {
                        format!("HTTP {status} for a user logged in before the restart")
                    });
                }
                SessionState::Error(e) => {
                    unknown += 1;
                    rec.error(1, Failure::CheckFailed, || e.clone());
                }
            }
        }
    }
    rec.flush(&timeline);
    let before = logged_in.len() as u64;
    let expected = if env.server.spec().server.family == crate::server::Family::Memcached {
        promise::expect_sessions_in_memory_only(&env.session_engine)
    } else {
        cfg.restart
            .expectation(&persistence_before, Some(&env.session_engine))
    };
    let (observed, matches) = PersistenceCheck::judge(&expected, before, lost, unknown);
    let check = PersistenceCheck {
        subject: "sessions".into(),
        restart: cfg.restart.restart,
        delay_seconds: cfg.restart.restart_delay.0.as_secs_f64(),
        persistence: persistence_before.to_string(),
        restarted_with: env.server.spec().persistence.to_string(),
        before,
        kept,
        lost,
        unknown,
        transient_errors: transient,
        expected: expected.clone(),
        observed,
        matches,
        lost_window_ms: None,
        downtime_ms: *restart.as_ref().unwrap_or(&0.0),
        restart_at_seconds: Some(restart_at),
        failover: None,
    };
    finish(rec, timeline, start, check, restart.err(), cfg.users as u64)
}

/// Turn a persistence check into the scenario's output and verdict (shared with durability).
pub fn finish(
    rec: Recorder,
    timeline: std::sync::Mutex<Timeline>,
    start: Instant,
    check: PersistenceCheck,
    restart_error: Option<String>,
    wanted: u64,
) -> ScenarioOutput {
    let window = start.elapsed().as_secs_f64();
    let (ops, errors) = rec.summarize(window);
    let (passed, reason) = if let Some(e) = restart_error {
        (false, format!("the server did not come back: {e}"))
    } else if check.before == 0 {
        (
            false,
            format!("nothing was written before the restart (0 of {wanted})"),
        )
    } else if check.unknown > 0 {
        (
            false,
            format!(
                "{} of {} {} could not be checked: the app failed to answer",
                check.unknown, check.before, check.subject
            ),
        )
    } else {
        let after = match &check.failover {
            Some(to) => format!("{:?} stop of the primary, failover to {to}", check.restart),
            None => format!("{:?} restart of {}", check.restart, check.persistence),
        };
        let summary = format!(
            "{} of {} {} kept after {after}; expected {:?}: {}",
            check.kept, check.before, check.subject, check.expected.promise, check.expected.because
        );
        (check.matches, summary)
    };
    ScenarioOutput {
        counts: rec.counts(),
        ops,
        errors,
        timeline: timeline.into_inner().expect("timeline lock").finish(),
        measured_seconds: window,
        passed,
        reason,
        check: Some(Check::Persistence(check)),
        ..Default::default()
    }
}

impl super::Scenario for SessionPersistenceConfig {
    const KIND: &'static str = "session-persistence";
    const FIELDS: &'static [&'static str] =
        &["users", "restart", "restart_delay", "restart_persistence"];
    const NEEDS_APP: bool = true;
    const OPS: Option<&'static [&'static str]> = Some(STEPS);
    const CHECK_METRICS: &'static [&'static str] = &["lost", "sessions_lost"];

    fn from_params(p: &ScenarioParams) -> Result<Self, String> {
        SessionPersistenceConfig::resolve(p)
    }
    async fn run(&self, env: &mut CellEnv<'_>) -> ScenarioOutput {
        run(self, env).await
    }
}
