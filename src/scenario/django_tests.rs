//! `django-tests`: run the team's project's own test suite (`manage.py test`) in the cell, on the
//! cell's stack with the cell's settings and against the cell's real server, and report each
//! test: the upgrade question "do our tests still pass on Django 5.2 with Redis 7.4?" per cell.
//!
//! The suite runs under cachegate's generated settings module, whose `TEST_RUNNER` is Django's
//! DiscoverRunner with a result class that appends one JSON line per test (id, outcome, the
//! innermost exception and its frames) to a file in a private temp folder: outcomes come from
//! the runner itself, not from parsing its console output. The console output is kept as the
//! cell's `NAME.tests.log`.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::ScenarioOutput;
use crate::child::ManagedChild;
use crate::config::scenario_file::ScenarioParams;
use crate::config::HumanDuration;
use crate::results::checks::test_suite::{TestFailure, TestSuiteReport};
use crate::results::checks::{Check, CheckView};
use crate::results::failure::Failure;
use crate::results::ErrorCount;
use crate::target::app::AppCode;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DjangoTestsConfig {
    /// How long the suite may take before it is stopped (`duration`, default 10 minutes).
    pub time_limit: HumanDuration,
}

/// One line of the runner's report.
#[derive(Debug, Deserialize)]
struct Line {
    test: String,
    outcome: String,
    #[serde(default)]
    innermost_type: String,
    #[serde(default)]
    innermost_message: String,
    #[serde(default)]
    frames: Vec<String>,
}

impl super::Scenario for DjangoTestsConfig {
    const KIND: &'static str = "django-tests";
    const FIELDS: &'static [&'static str] = &["duration"];
    const NEEDS_APP: bool = false;
    const NEEDS_STACK: bool = true;
    const OPS: Option<&'static [&'static str]> = Some(&[]);

    fn from_params(p: &ScenarioParams) -> Result<Self, String> {
        Ok(DjangoTestsConfig {
            time_limit: p
                .duration
                .unwrap_or(HumanDuration(Duration::from_secs(600))),
        })
    }

    fn planned_seconds(&self) -> u64 {
        0
    }

    async fn run(&self, env: &mut super::CellEnv<'_>) -> ScenarioOutput {
        match run_suite(self, env).await {
            Ok(out) => out,
            Err(e) => ScenarioOutput::infra(e),
        }
    }
}

async fn run_suite(
    cfg: &DjangoTestsConfig,
    env: &mut super::CellEnv<'_>,
) -> Result<ScenarioOutput, String> {
    let Some(stack) = env.venv else {
        return Err("django-tests needs the cell's stack (axes.stack)".into());
    };
    let AppCode::Project { project, hook } = AppCode::of(env.target)? else {
        return Err("django-tests runs a team's project's suite: set [target] project".into());
    };
    let table = env
        .settings_name
        .as_ref()
        .and_then(|n| env.settings.get(n))
        .ok_or("django-tests needs a settings axis")?;
    let settings = crate::target::django_settings(table, &env.addresses)?;
    let scratch = crate::scratch::temp_dir("tests")
        .map_err(|e| format!("creating the suite's temp folder: {e}"))?;
    let report = scratch.path().join("report.jsonl");
    let db = scratch.path().join("db.sqlite3");
    let mut cmd = crate::target::project::python(stack, &project, &hook, &settings, &db);
    cmd.args(["manage.py", "test", "--noinput", "-v", "2"])
        .args(&env.target.test_labels)
        .env("CACHEGATE_TEST_REPORT", &report);
    let command = std::iter::once("manage.py test".to_string())
        .chain(env.target.test_labels.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let log = env.log_base.with_extension("tests.log");
    let started = Instant::now();
    let mut child =
        ManagedChild::spawn(cmd, &log).map_err(|e| format!("cannot run the test suite: {e}"))?;
    let mut timed_out = false;
    while child.is_running() {
        if env.cancel.is_cancelled() {
            break;
        }
        if started.elapsed() > cfg.time_limit.0 {
            timed_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exit_code = child.exit_code();
    child.kill_now();
    let seconds = started.elapsed().as_secs_f64();
    let lines: Vec<Line> = std::fs::read_to_string(&report)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut suite = TestSuiteReport {
        command,
        passed: 0,
        failed: 0,
        errored: 0,
        skipped: 0,
        exit_code,
        failures: vec![],
        broken: None,
    };
    for line in &lines {
        match line.outcome.as_str() {
            "passed" => suite.passed += 1,
            "skipped" => suite.skipped += 1,
            "failed" => suite.failed += 1,
            _ => suite.errored += 1,
        }
        if matches!(line.outcome.as_str(), "failed" | "errored") {
            let signature = match line.innermost_message.as_str() {
                "" => line.innermost_type.clone(),
                m => format!("{}: {m}", line.innermost_type),
            };
            suite.failures.push(TestFailure {
                test: line.test.clone(),
                outcome: line.outcome.clone(),
                signature,
                frames: line.frames.clone(),
            });
        }
    }
    let tail = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(3)..].join(" | ")
    };
    if timed_out {
        suite.broken = Some(format!(
            "stopped after {}s (duration); last output: {}",
            cfg.time_limit.0.as_secs(),
            tail()
        ));
    } else if lines.is_empty() {
        suite.broken = Some(format!(
            "no test reported (exit code {}): {}",
            exit_code.map_or("none".into(), |c| c.to_string()),
            tail()
        ));
    }
    let errors: Vec<ErrorCount> = suite
        .failures
        .iter()
        .map(|f| ErrorCount {
            kind: Failure::Test {
                outcome: f.outcome.to_string(),
                test: f.test.clone(),
            }
            .to_string(),
            count: 1,
            example: f.signature.clone(),
        })
        .collect();
    let passed = suite.green();
    let reason = match &suite.failures[..] {
        _ if suite.broken.is_some() => CheckView::summary(&suite),
        [] => CheckView::summary(&suite),
        [first, ..] => format!(
            "{}; first: {} ({})",
            CheckView::summary(&suite),
            first.test,
            first.signature
        ),
    };
    Ok(ScenarioOutput {
        measured_seconds: seconds,
        passed,
        reason,
        errors,
        check: Some(Check::TestSuite(suite)),
        ..Default::default()
    })
}
