//! Results of the verification scenarios, one tagged `Check` per cell: what survived a restart
//! (sessions or acknowledged writes) against what the mode promises, what an outage did to the
//! app, what memory pressure did to sessions. Each kind's shape lives in its own file with what
//! it shows (`CheckView`): its phrase, its gate metrics and its row in the report.

pub mod eviction;
pub mod outage;
pub mod persistence;
pub mod rolling;
pub mod stack_transition;
pub mod test_suite;
pub mod upgrade;

use serde::{Deserialize, Serialize};

pub use eviction::EvictionReport;
pub use outage::{LoggedInUsers, OutageReport, ReadsInSecond, ReadsSeen, StepDuringOutage};
pub use persistence::PersistenceCheck;
pub use upgrade::UpgradeCheck;

/// What should happen to data written before the restart (which mode promises what, and why:
/// `scenario::promise`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Promise {
    /// Everything acknowledged survives.
    Keep,
    /// Data written since the last snapshot (or all of it) is gone.
    Lose,
    /// The mode makes no promise either way for this restart (a save point may or may not have
    /// fired in between; a changed config): observed, not judged.
    Either,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expectation {
    pub promise: Promise,
    /// Why, in words, for the report.
    pub because: String,
    /// Set when this test cannot tell apart what the modes promise (e.g. fsync policies under a
    /// process kill): the report shows it instead of implying a difference was tested.
    pub not_separable: Option<String>,
}

/// A table of the report: one row per cell whose check belongs to it.
#[derive(Debug, PartialEq, Eq)]
pub struct Section {
    pub title: &'static str,
    /// Column headers between the cell and its verdict.
    pub headers: &'static [&'static str],
}

/// One table cell of a check's row: text, right-aligned if a number, with muted notes below.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Field {
    pub text: String,
    pub num: bool,
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// Shown in bold before the text.
    pub label: Option<&'static str>,
    pub text: String,
}

impl Field {
    pub fn text(text: impl Into<String>) -> Field {
        Field {
            text: text.into(),
            ..Default::default()
        }
    }

    pub fn num(text: impl ToString) -> Field {
        Field {
            text: text.to_string(),
            num: true,
            notes: vec![],
        }
    }

    pub fn note(mut self, label: Option<&'static str>, text: impl Into<String>) -> Field {
        self.notes.push(Note {
            label,
            text: text.into(),
        });
        self
    }
}

/// One cell of a transition grid (`from` rows × `to` columns), for checks about a change
/// between two things: grids are grouped by `group` (e.g. the persistence and restart).
#[derive(Debug, Clone, PartialEq)]
pub struct GridCell {
    pub title: &'static str,
    pub group: String,
    pub row: String,
    pub col: String,
    pub text: String,
}

/// What a check shows: its phrase, its gate metrics, its report row.
pub trait CheckView {
    const SECTION: Section;
    /// One phrase for the cell's check column.
    fn summary(&self) -> String;
    /// A verification metric (`config::gates::CHECK_METRICS`), if this check reports it.
    fn metric(&self, name: &str) -> Option<f64>;
    /// The row in `SECTION`, after the cell's name.
    fn row(&self) -> Vec<Field>;
    /// Do the load numbers (throughput, latency, errors) describe what the cell is about?
    fn shows_load(&self) -> bool {
        true
    }
    /// Failed requests that are the outcome under test, not errors (lost sessions).
    fn outcome_failures(&self) -> u64 {
        0
    }
    /// Its place in a transition grid, if it is about a transition.
    fn grid(&self) -> Option<GridCell> {
        None
    }
    /// When, on the cell's timeline, the fault it inflicted lasted (kill, restart, switch-over),
    /// so charts can shade it.
    fn fault_windows(&self) -> Vec<FaultWindow> {
        Vec::new()
    }
}

/// A stretch of a cell's timeline when a fault was in force, in seconds since the scenario
/// started (the timeline's clock).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    pub label: String,
    pub from_seconds: f64,
    pub to_seconds: f64,
}

/// The registry of check kinds: variant, type, accessor, once. Generates `Check` (tagged by
/// `kind` in results.jsonl) and its dispatch.
macro_rules! checks {
    ($($variant:ident($ty:ty) $accessor:ident),* $(,)?) => {
        /// What a verification scenario found, against what was promised.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "kebab-case")]
        pub enum Check {
            $($variant($ty)),*
        }

        impl Check {
            /// Every section, in the order the report shows them.
            pub const SECTIONS: &'static [Section] = &[$(<$ty as CheckView>::SECTION),*];

            pub fn section(&self) -> &'static Section {
                match self {
                    $(Check::$variant(_) => {
                        const S: Section = <$ty as CheckView>::SECTION;
                        &S
                    })*
                }
            }

            $(
                pub fn $accessor(&self) -> Option<&$ty> {
                    match self {
                        Check::$variant(c) => Some(c),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }
            )*

            fn view(&self) -> &dyn DynView {
                match self {
                    $(Check::$variant(c) => c),*
                }
            }
        }
    };
}

checks! {
    Persistence(PersistenceCheck) persistence,
    Outage(OutageReport) outage,
    Eviction(EvictionReport) eviction,
    Upgrade(UpgradeCheck) upgrade,
    StackTransition(stack_transition::StackTransitionCheck) stack_transition,
    RollingUpgrade(rolling::RollingUpgradeCheck) rolling_upgrade,
    TestSuite(test_suite::TestSuiteReport) test_suite,
}

/// `CheckView` without its constant, so `Check` can hand out any kind's view.
trait DynView {
    fn summary(&self) -> String;
    fn metric(&self, name: &str) -> Option<f64>;
    fn row(&self) -> Vec<Field>;
    fn shows_load(&self) -> bool;
    fn outcome_failures(&self) -> u64;
    fn grid(&self) -> Option<GridCell>;
    fn fault_windows(&self) -> Vec<FaultWindow>;
}

impl<T: CheckView> DynView for T {
    fn summary(&self) -> String {
        CheckView::summary(self)
    }
    fn metric(&self, name: &str) -> Option<f64> {
        CheckView::metric(self, name)
    }
    fn row(&self) -> Vec<Field> {
        CheckView::row(self)
    }
    fn shows_load(&self) -> bool {
        CheckView::shows_load(self)
    }
    fn outcome_failures(&self) -> u64 {
        CheckView::outcome_failures(self)
    }
    fn grid(&self) -> Option<GridCell> {
        CheckView::grid(self)
    }
    fn fault_windows(&self) -> Vec<FaultWindow> {
        CheckView::fault_windows(self)
    }
}

impl Check {
    pub fn summary(&self) -> String {
        self.view().summary()
    }
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.view().metric(name)
    }
    pub fn row(&self) -> Vec<Field> {
        self.view().row()
    }
    pub fn shows_load(&self) -> bool {
        self.view().shows_load()
    }
    pub fn outcome_failures(&self) -> u64 {
        self.view().outcome_failures()
    }
    pub fn grid(&self) -> Option<GridCell> {
        self.view().grid()
    }
    pub fn fault_windows(&self) -> Vec<FaultWindow> {
        self.view().fault_windows()
    }
}

/// Results written before schema 2 kept each kind's check in its own field (`persistence`,
/// `outage`, `eviction`): move it into `check`, tagged, so old runs still load and render.
pub fn upgrade_legacy(result: &mut serde_json::Value) {
    let Some(obj) = result.as_object_mut() else {
        return;
    };
    for kind in ["persistence", "outage", "eviction"] {
        match obj.remove(kind) {
            Some(serde_json::Value::Object(mut fields)) if !obj.contains_key("check") => {
                fields.insert("kind".into(), kind.into());
                obj.insert("check".into(), fields.into());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_1_fields_become_a_tagged_check() {
        let mut old = serde_json::json!({"outage": {"down_at_seconds": 3.0}, "other": 1});
        upgrade_legacy(&mut old);
        assert_eq!(
            old,
            serde_json::json!({"check": {"kind": "outage", "down_at_seconds": 3.0}, "other": 1})
        );
        let mut new = serde_json::json!({"check": {"kind": "eviction"}});
        upgrade_legacy(&mut new);
        assert_eq!(new, serde_json::json!({"check": {"kind": "eviction"}}));
    }
}
