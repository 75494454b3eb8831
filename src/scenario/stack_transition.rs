//! `stack-transition`: users log in through the cell's stack (A); a second app on `to_stack` (B)
//! starts on the same server, settings and accounts; every session is read through B, then both
//! serve at once and each user reads through A and B in turn (the mixed phase of a deploy).
//! Nothing restarts and nothing is evicted, so a session B cannot read is an incompatibility
//! between the stacks; B's exceptions say which.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;

use super::browser::{Browser, SessionState};
use super::{CellEnv, ScenarioOutput};
use crate::config::scenario_file::{at_least_one, ScenarioParams};
use crate::config::HumanDuration;
use crate::results::checks::stack_transition::StackTransitionCheck;
use crate::results::checks::upgrade::Items;
use crate::results::checks::{Check, CheckView};
use crate::results::recorder::{Recorder, Timeline};
use crate::target::app::{AppProcess, Workers};
use crate::target::{app_files, exceptions};

pub const STEPS: &[&str] = &["log-in", "check-on-to", "mixed-read"];

/// Reads per user in the mixed phase (half through each stack).
const MIXED_READS: u32 = 4;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackTransitionConfig {
    /// The `[stacks]` entry that serves the users after the cell's stack.
    pub to_stack: String,
    pub users: u32,
    pub request_timeout: HumanDuration,
}

impl super::Scenario for StackTransitionConfig {
    const KIND: &'static str = "stack-transition";
    const FIELDS: &'static [&'static str] = &["to_stack", "users"];
    const NEEDS_APP: bool = true;
    const OPS: Option<&'static [&'static str]> = Some(STEPS);
    const CHECK_METRICS: &'static [&'static str] = &["lost", "sessions_lost"];

    fn from_params(p: &ScenarioParams) -> Result<Self, String> {
        Ok(StackTransitionConfig {
            to_stack: p
                .to_stack
                .clone()
                .ok_or("field `to_stack` missing: the [stacks] entry that takes over")?,
            users: at_least_one(p.users, "users", 10)?,
            request_timeout: p
                .op_timeout
                .unwrap_or(HumanDuration(Duration::from_secs(30))),
        })
    }

    async fn run(&self, env: &mut CellEnv<'_>) -> ScenarioOutput {
        run(self, env).await
    }
}

async fn read(b: &Browser, rec: &mut Recorder, step: usize, items: &mut Items) {
    let t = Instant::now();
    items.written += 1;
    match b.check().await {
        SessionState::Valid => {
            items.kept += 1;
            rec.ok(step, t.elapsed().as_nanos() as u64);
        }
        SessionState::Lost(status) => {
            items.lost += 1;
            rec.error(step, "session lost".into(), || {
                format!("HTTP {status} for a user logged in through the other stack")
            });
        }
        SessionState::Error(e) => {
            items.unknown += 1;
            rec.error(step, "check failed".into(), || e);
        }
    }
}

pub async fn run(cfg: &StackTransitionConfig, env: &mut CellEnv<'_>) -> ScenarioOutput {
    let base_a = env
        .app_url
        .clone()
        .expect("stack-transition runs against an app");
    let (Some(settings), Some(db)) = (env.app_settings.clone(), env.app_db.clone()) else {
        return ScenarioOutput::infra(
            "stack-transition needs the bundled app (a stack and settings axis)".into(),
        );
    };
    let Some(spec) = env.stacks.get(&cfg.to_stack).cloned() else {
        let known: Vec<&String> = env.stacks.keys().collect();
        return ScenarioOutput::infra(format!(
            "to_stack `{}`: no [stacks.\"{}\"] in the matrix (defined: {known:?})",
            cfg.to_stack, cfg.to_stack
        ));
    };
    let cache = crate::server::provision::default_cache_dir();
    let name = cfg.to_stack.clone();
    let stack_cache = cache.clone();
    let to_stack = match tokio::task::spawn_blocking(move || {
        crate::stack::provision(&name, &spec, &stack_cache)
    })
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return ScenarioOutput::infra(format!("provisioning `to_stack`: {e}")),
        Err(e) => return ScenarioOutput::infra(format!("provisioning `to_stack`: {e}")),
    };
    let app_dir = match app_files::install(&cache) {
        Ok(d) => d,
        Err(e) => return ScenarioOutput::infra(format!("writing the bundled app: {e}")),
    };
    let start = Instant::now();
    let mut rec = Recorder::new(STEPS);
    let timeline = std::sync::Mutex::new(Timeline::new(0.0));
    let timeout = cfg.request_timeout.0;

    // 1. Log in through A.
    let mut browsers: Vec<Browser> = (0..cfg.users)
        .map(|i| {
            Browser::new(
                &base_a,
                env.target,
                format!("{}t{i}", env.user_tag),
                timeout,
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
            Err(e) => rec.error(0, "login failed".into(), || e.clone()),
        }
    }

    // 2. B on the same server, settings and accounts; every session read through B.
    let mut app_b = match AppProcess::start_on(
        &to_stack,
        &app_dir,
        &settings,
        Workers::of(env.target),
        Some(&db),
    )
    .await
    {
        Ok(a) => a,
        Err(e) => return ScenarioOutput::infra(format!("starting the app on `to_stack`: {e}")),
    };
    let base_b = app_b.base_url();
    let mut sessions = Items::default();
    for b in &mut logged_in {
        b.switch_to(&base_b);
        read(b, &mut rec, 1, &mut sessions).await;
    }
    // 3. Both serving: each user reads through A and B in turn.
    let mut mixed = Items::default();
    for i in 0..MIXED_READS {
        for b in &mut logged_in {
            b.switch_to(if i % 2 == 0 { &base_a } else { &base_b });
            read(b, &mut rec, 2, &mut mixed).await;
        }
    }
    let log_b = {
        let mut name = env.log_base.as_os_str().to_owned();
        name.push(".to-app.log");
        std::path::PathBuf::from(name)
    };
    app_b.stop(Some(&log_b)).await;
    let b_log = std::fs::read_to_string(&log_b).unwrap_or_default();
    let to_exceptions: Vec<String> = exceptions::from_log(&b_log, |p| env.target.step_of_path(p))
        .into_iter()
        .map(|e| format!("{} (x{})", e.signature, e.count))
        .collect();
    rec.flush(&timeline);

    let matches =
        !logged_in.is_empty() && sessions.kept == sessions.written && mixed.kept == mixed.written;
    let check = StackTransitionCheck {
        from: env.stack.clone().unwrap_or_default(),
        to: format!("{} ({})", cfg.to_stack, to_stack.summary()),
        sessions,
        mixed_reads: mixed,
        to_exceptions,
        matches,
    };
    let reason = format!(
        "{}{}",
        check.summary(),
        check
            .to_exceptions
            .first()
            .map(|e| format!("; {} raised {e}", cfg.to_stack))
            .unwrap_or_default()
    );
    let window = start.elapsed().as_secs_f64();
    let (ops, errors) = rec.summarize(window);
    ScenarioOutput {
        counts: rec.counts(),
        ops,
        errors,
        timeline: timeline.into_inner().expect("timeline lock").finish(),
        measured_seconds: window,
        passed: matches,
        reason,
        check: Some(Check::StackTransition(check)),
        ..Default::default()
    }
}
