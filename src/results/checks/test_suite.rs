//! `django-tests`: what the project's own test suite did on the cell's stack, server and
//! settings.

use serde::{Deserialize, Serialize};

use super::{CheckView, Field, Section};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestSuiteReport {
    /// The command that ran ("manage.py test", with its labels).
    pub command: String,
    pub passed: u64,
    pub failed: u64,
    pub errored: u64,
    pub skipped: u64,
    /// The runner's exit code (`None`: killed, or never reported).
    pub exit_code: Option<i32>,
    /// Every failed or errored test, with its failure signature.
    pub failures: Vec<TestFailure>,
    /// Set when the suite did not report (it could not be imported, it timed out): the last
    /// lines of its output.
    pub broken: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestFailure {
    /// "app.tests.Case.test_name".
    pub test: String,
    /// "failed" (an assertion) or "errored" (an exception).
    pub outcome: String,
    /// "AssertionError: 405 != 302": the innermost exception and its first line.
    pub signature: String,
    /// Its innermost frames, outermost first.
    pub frames: Vec<String>,
}

impl TestSuiteReport {
    pub fn total(&self) -> u64 {
        self.passed + self.failed + self.errored + self.skipped
    }

    /// Did every test that ran pass?
    pub fn green(&self) -> bool {
        self.broken.is_none() && self.failed == 0 && self.errored == 0 && self.total() > 0
    }
}

impl CheckView for TestSuiteReport {
    const SECTION: Section = Section {
        title: "The project's own tests",
        headers: &["passed", "failed", "errored", "skipped", "failures"],
    };

    fn summary(&self) -> String {
        if let Some(why) = &self.broken {
            return format!("the test suite did not run: {why}");
        }
        format!(
            "{} of {} tests passed, {} failed, {} errored, {} skipped",
            self.passed,
            self.total(),
            self.failed,
            self.errored,
            self.skipped
        )
    }

    fn metric(&self, _name: &str) -> Option<f64> {
        None
    }

    fn row(&self) -> Vec<Field> {
        let mut failures = Field::text(match (&self.broken, self.failures.len()) {
            (Some(why), _) => why.clone(),
            (None, 0) => "none".to_string(),
            (None, n) => format!("{n}"),
        });
        for f in &self.failures {
            failures = failures.note(Some("test"), format!("{} — {}", f.test, f.signature));
        }
        vec![
            Field::num(self.passed),
            Field::num(self.failed),
            Field::num(self.errored),
            Field::num(self.skipped),
            failures,
        ]
    }

    fn shows_load(&self) -> bool {
        false
    }
}
