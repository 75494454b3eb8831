//! JUnit XML: one test case per cell (repeats separate), so CI systems list cells like tests.
//! Failures carry the failure signature; cells that could not run are errors; XFAIL passes;
//! a cell that missed a gate fails with the gate, whatever its scenario's verdict.

use super::renderer::{self, Renderer};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::model::{or_dash, CellView};
use super::summary::Summary;
use crate::results::Verdict;

/// `junit.xml`.
pub struct Junit;

impl Renderer for Junit {
    fn render(&self, r: &renderer::Report) -> String {
        render(r.summary, r.cells)
    }
}

fn render(summary: &Summary, cells: &[CellView]) -> String {
    let mut report = Report::new(format!("cachegate {}", summary.run_id));
    let mut suites: Vec<TestSuite> = Vec::new();
    for c in cells {
        let suite_name = c.scenario.clone();
        let name = c.name.clone();
        let gates = c.failed_gates.join("; ");
        let status = match c.verdict {
            Verdict::Pass | Verdict::Xfail if !c.failed_gates.is_empty() => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!("gate failed: {gates}"));
                s.set_type("GATE");
                s.set_description(format!("{}; {}", c.verdict_label(), c.reason));
                s
            }
            Verdict::Pass | Verdict::Xfail => TestCaseStatus::success(),
            Verdict::Fail | Verdict::Xpass => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(c.signature.clone().unwrap_or_else(|| c.reason.clone()));
                s.set_type(super::model::verdict_name(c.verdict));
                s.set_description(if gates.is_empty() {
                    c.reason.clone()
                } else {
                    format!("{}; gate failed: {gates}", c.reason)
                });
                s
            }
            Verdict::Error => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                s.set_message(c.reason.clone());
                s.set_type("ERROR");
                s
            }
            Verdict::Unsupported => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(c.reason.clone());
                s.set_type("UNSUPPORTED");
                s
            }
        };
        let mut case = TestCase::new(name, status);
        case.set_classname(format!("cachegate.{}", c.scenario));
        let h = &c.headline;
        if !c.ran_as.is_empty() {
            case.add_property(quick_junit::Property::new("ran_as", c.ran_as.clone()));
        }
        case.set_system_out(format!(
            "verdict {}; {} ops/s, p99 {}, errors {}; {}",
            c.verdict_label(),
            or_dash(h.throughput, |t| format!("{t:.0}")),
            or_dash(h.p99_us, |p| format!("{p:.0}us")),
            or_dash(h.errors, |e| e.to_string()),
            c.reason
        ));
        add(&mut suites, &suite_name, case);
    }
    // Planned cells that never ran are skipped tests, so the counts add up to the matrix.
    for p in &summary.not_run {
        let mut s = TestCaseStatus::skipped();
        s.set_message(format!(
            "not run: the run ended early ({})",
            summary.run_end
        ));
        add(
            &mut suites,
            "not run",
            TestCase::new(super::summary::planned_name(p), s),
        );
    }
    for g in summary.gates.iter().filter(|g| !g.passed) {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_message(format!(
            "{} = {:.3}, needs {}",
            g.metric, g.value, g.condition
        ));
        let case = TestCase::new(
            format!("gate {} {} {}", g.cell_id, g.metric, g.condition),
            s,
        );
        add(&mut suites, "gates", case);
    }
    report.add_test_suites(suites);
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- JUnit serialization failed: {e} -->"))
}

/// Add a case to the suite of that name, creating it on first use.
fn add(suites: &mut Vec<TestSuite>, name: &str, case: TestCase) {
    if let Some(suite) = suites.iter_mut().find(|s| s.name.as_str() == name) {
        suite.add_test_case(case);
    } else {
        let mut suite = TestSuite::new(name.to_string());
        suite.add_test_case(case);
        suites.push(suite);
    }
}
