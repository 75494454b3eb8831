//! `stack-transition`: users log in through the cell's stack and settings (A), and A writes cache
//! entries of several kinds; a second app (B) on `to_stack` and/or `to_settings` (another Django,
//! redis-py, django-redis, serializer or compressor) starts on the same server and accounts;
//! every session and entry is read through B. Then both serve at once (the mixed phase of a
//! deploy): each user reads through A and B in turn, and B writes entries that A reads back (the
//! old version reading what the new one wrote: the rollback direction). Nothing restarts and
//! nothing is evicted, so a session or entry one side cannot read is an incompatibility between
//! the two; the apps' exceptions say which.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;

use super::browser::{Browser, SessionState};
use super::cached_values::{self, Read};
use super::{CellEnv, ScenarioOutput};
use crate::config::scenario_file::{at_least_one, ScenarioParams};
use crate::config::HumanDuration;
use crate::results::checks::stack_transition::StackTransitionCheck;
use crate::results::checks::upgrade::Items;
use crate::results::checks::{Check, CheckView};
use crate::results::failure::Failure;
use crate::results::recorder::{Recorder, Timeline};
use crate::target::app::{AppCode, AppProcess};
use crate::target::exceptions;

pub const STEPS: &[&str] = &[
    "log-in",
    "check-on-to",
    "mixed-read",
    "cache-write",
    "cache-read-on-to",
    "cache-read-back",
];

/// Cache entries per kind written through each side.
const VALUES_PER_KIND: u32 = 3;

/// Reads per user in the mixed phase (half through each stack).
const MIXED_READS: u32 = 4;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackTransitionConfig {
    /// The `[stacks]` entry that serves the users after the cell's stack (default: the cell's).
    pub to_stack: Option<String>,
    /// The `[settings]` entry B runs with (default: the cell's).
    pub to_settings: Option<String>,
    pub users: u32,
    pub request_timeout: HumanDuration,
}

impl super::Scenario for StackTransitionConfig {
    const KIND: &'static str = "stack-transition";
    const FIELDS: &'static [&'static str] = &["to_stack", "to_settings", "users"];
    const NEEDS_APP: bool = true;
    const OPS: Option<&'static [&'static str]> = Some(STEPS);
    const CHECK_METRICS: &'static [&'static str] = &["lost", "sessions_lost"];

    fn from_params(p: &ScenarioParams) -> Result<Self, String> {
        if p.to_stack.is_none() && p.to_settings.is_none() {
            return Err(
                "field `to_stack` or `to_settings` missing: the [stacks] or [settings] \
                        entry that takes over"
                    .into(),
            );
        }
        Ok(StackTransitionConfig {
            to_stack: p.to_stack.clone(),
            to_settings: p.to_settings.clone(),
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
            rec.error(step, Failure::SessionLost, || {
                format!("HTTP {status} for a user logged in through the other stack")
            });
        }
        SessionState::Error(e) => {
            items.unknown += 1;
            rec.error(step, Failure::CheckFailed, || e);
        }
    }
}

/// Write `values` through `base`, counting what was stored.
async fn write_values(
    client: &reqwest::Client,
    base: &str,
    values: &[cached_values::CachedValue],
    rec: &mut Recorder,
    by_kind: &mut BTreeMap<String, Items>,
) -> Vec<usize> {
    let mut stored = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let t = Instant::now();
        match cached_values::write(client, base, v).await {
            Ok(()) => {
                rec.ok(3, t.elapsed().as_nanos() as u64);
                by_kind.entry(v.kind.into()).or_default().written += 1;
                stored.push(i);
            }
            Err(e) => rec.error(3, Failure::CacheWriteFailed, || e),
        }
    }
    stored
}

/// Read the stored `values` back through `base`.
async fn read_values(
    client: &reqwest::Client,
    base: &str,
    values: &[cached_values::CachedValue],
    stored: &[usize],
    (rec, step): (&mut Recorder, usize),
    by_kind: &mut BTreeMap<String, Items>,
) {
    for &i in stored {
        let v = &values[i];
        let t = Instant::now();
        let read = cached_values::read(client, base, v).await;
        match &read {
            Read::Same => rec.ok(step, t.elapsed().as_nanos() as u64),
            Read::Changed => rec.error(step, Failure::CacheEntryChanged, || {
                format!("{} ({}) reads as another value", v.key, v.kind)
            }),
            Read::Missing => rec.error(step, Failure::CacheEntryMissing, || {
                format!("{} ({}) is not found", v.key, v.kind)
            }),
            Read::Failed(e) => rec.error(step, Failure::CacheReadFailed, || e.clone()),
        }
        cached_values::count(by_kind, v, &read);
    }
}

/// The exceptions an app logged, by signature and count.
fn exceptions_in(log: &std::path::Path, env: &CellEnv<'_>) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    exceptions::from_log(&text, |p| env.target.step_of_path(p))
        .into_iter()
        .map(|e| format!("{} (x{})", e.signature, e.count))
        .collect()
}

/// "name (versions) · settings NAME"
fn side(stack: &str, settings: Option<&str>) -> String {
    match settings {
        Some(s) => format!("{stack} · settings {s}"),
        None => stack.to_string(),
    }
}

pub async fn run(cfg: &StackTransitionConfig, env: &mut CellEnv<'_>) -> ScenarioOutput {
    let base_a = env
        .app_url
        .clone()
        .expect("stack-transition runs against an app");
    let (Some(settings_a), Some(db)) = (env.app_settings.clone(), env.app_db.clone()) else {
        return ScenarioOutput::infra(
            "stack-transition needs the bundled app (a stack and settings axis)".into(),
        );
    };
    let Some(to_stack_name) = cfg.to_stack.clone().or_else(|| env.stack_name.clone()) else {
        return ScenarioOutput::infra("stack-transition needs a stack axis".into());
    };
    let Some(spec) = env.stacks.get(&to_stack_name).cloned() else {
        let known: Vec<&String> = env.stacks.keys().collect();
        return ScenarioOutput::infra(format!(
            "to_stack `{to_stack_name}`: no [stacks.\"{to_stack_name}\"] in the matrix (defined: {known:?})"
        ));
    };
    // B's settings: its own table, with the same placeholders filled as A's, or A's as sent.
    let settings_b = match &cfg.to_settings {
        None => settings_a.clone(),
        Some(name) => match env.settings.get(name) {
            None => {
                let known: Vec<&String> = env.settings.keys().collect();
                return ScenarioOutput::infra(format!(
                    "to_settings `{name}`: no [settings.\"{name}\"] in the matrix (defined: {known:?})"
                ));
            }
            Some(table) => match crate::target::django_settings(table, &env.addresses) {
                Ok(s) => s,
                Err(e) => return ScenarioOutput::infra(format!("to_settings `{name}`: {e}")),
            },
        },
    };
    let cache = crate::server::provision::default_cache_dir();
    let name = to_stack_name.clone();
    let stack_cache = cache.clone();
    let target = env.target.clone();
    let to_stack = match tokio::task::spawn_blocking(move || {
        crate::target::project::requirements_for(&target, &spec).and_then(|r| {
            crate::stack::provision(&name, &spec, &stack_cache, r).map_err(|e| e.to_string())
        })
    })
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return ScenarioOutput::infra(format!("provisioning `to_stack`: {e}")),
        Err(e) => return ScenarioOutput::infra(format!("provisioning `to_stack`: {e}")),
    };
    let code = match AppCode::of(env.target) {
        Ok(c) => c,
        Err(e) => return ScenarioOutput::infra(e),
    };
    let start = Instant::now();
    let mut rec = Recorder::new(STEPS);
    let timeline = std::sync::Mutex::new(Timeline::new(0.0));
    let timeout = cfg.request_timeout.0;
    let client = cached_values::client(timeout);

    // 1. Log in through A, and write cache entries through A.
    let mut browsers: Vec<Browser> = (0..cfg.users)
        .map(|i| {
            env.browser(
                &base_a,
                i as usize,
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
            // Counted as `login failed` whichever step of the sign-in failed: the name this
            // scenario has always recorded (not `e.failure()`, which would rename it).
            Err(e) => rec.error(0, Failure::StepFailed("login"), || e.to_string()),
        }
    }
    let from_a = cached_values::values(&format!("{}a", env.user_tag), VALUES_PER_KIND);
    let mut values = BTreeMap::new();
    let stored_a = write_values(&client, &base_a, &from_a, &mut rec, &mut values).await;

    // 2. B on the same server and accounts; every session and entry read through B.
    let mut app_b =
        match AppProcess::start_on(&to_stack, &code, env.target, &settings_b, Some(&db)).await {
            Ok(a) => a,
            Err(e) => return ScenarioOutput::infra(format!("starting the `to` app: {e}")),
        };
    let base_b = app_b.base_url();
    let mut sessions = Items::default();
    for b in &mut logged_in {
        b.switch_to(&base_b);
        read(b, &mut rec, 1, &mut sessions).await;
    }
    read_values(
        &client,
        &base_b,
        &from_a,
        &stored_a,
        (&mut rec, 4),
        &mut values,
    )
    .await;

    // 3. Both serving: each user reads through A and B in turn; B writes, A reads back.
    let mut mixed = Items::default();
    for i in 0..MIXED_READS {
        for b in &mut logged_in {
            b.switch_to(if i % 2 == 0 { &base_a } else { &base_b });
            read(b, &mut rec, 2, &mut mixed).await;
        }
    }
    let from_b = cached_values::values(&format!("{}b", env.user_tag), VALUES_PER_KIND);
    let mut values_back = BTreeMap::new();
    let stored_b = write_values(&client, &base_b, &from_b, &mut rec, &mut values_back).await;
    read_values(
        &client,
        &base_a,
        &from_b,
        &stored_b,
        (&mut rec, 5),
        &mut values_back,
    )
    .await;

    let log_b = {
        let mut name = env.log_base.as_os_str().to_owned();
        name.push(".to-app.log");
        std::path::PathBuf::from(name)
    };
    app_b.stop(Some(&log_b)).await;
    let to_exceptions = exceptions_in(&log_b, env);
    rec.flush(&timeline);

    // Nothing restarted and nothing was evicted: everything written should read the same.
    let all = |i: &Items| i.kept == i.written;
    let (v, vb) = (
        Items::total(values.values()),
        Items::total(values_back.values()),
    );
    let matches = !logged_in.is_empty()
        && v.written > 0
        && vb.written > 0
        && all(&sessions)
        && all(&mixed)
        && all(&v)
        && all(&vb);
    let check = StackTransitionCheck {
        from: side(
            env.stack.as_deref().unwrap_or_default(),
            cfg.to_settings.as_ref().and(env.settings_name.as_deref()),
        ),
        to: side(
            &format!("{to_stack_name} ({})", to_stack.summary()),
            cfg.to_settings.as_deref(),
        ),
        sessions,
        mixed_reads: mixed,
        values,
        values_back,
        to_exceptions,
        matches,
    };
    let reason = format!(
        "{}{}",
        check.summary(),
        check
            .to_exceptions
            .first()
            .map(|e| format!("; the `to` app raised {e}"))
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
