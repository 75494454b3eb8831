//! `stack-transition`: sessions created through one client stack, read through another serving
//! the same server (a deploy that switches Django, redis-py or django-redis under live users).

use serde::{Deserialize, Serialize};

use super::upgrade::Items;
use super::{CheckView, Field, GridCell, Section};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackTransitionCheck {
    /// Stack names and versions, e.g. "django-5.2 (Python 3.11.7, django 5.2.19, redis 5.2.1)".
    pub from: String,
    pub to: String,
    /// Sessions logged in through `from`, then read through `to`.
    pub sessions: Items,
    /// Both stacks serving at once: each user reads through `from` and `to` in turn.
    pub mixed_reads: Items,
    /// Exceptions the `to` app logged, by signature.
    pub to_exceptions: Vec<String>,
    /// Nothing was restarted and nothing evicted: every session should read the same.
    pub matches: bool,
}

impl CheckView for StackTransitionCheck {
    const SECTION: Section = Section {
        title: "Client-stack transitions: sessions of one stack read by another",
        headers: &[
            "from",
            "to",
            "sessions kept",
            "mixed reads ok",
            "to's exceptions",
        ],
    };

    fn summary(&self) -> String {
        format!(
            "{}/{} sessions valid through {}, mixed reads {}/{}",
            self.sessions.kept,
            self.sessions.written,
            self.to,
            self.mixed_reads.kept,
            self.mixed_reads.written
        )
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let lost = (self.sessions.lost + self.sessions.changed) as f64;
        matches!(name, "lost" | "sessions_lost").then_some(lost)
    }

    fn row(&self) -> Vec<Field> {
        vec![
            Field::text(&self.from),
            Field::text(&self.to),
            Field::num(format!("{}/{}", self.sessions.kept, self.sessions.written)),
            Field::num(format!(
                "{}/{}",
                self.mixed_reads.kept, self.mixed_reads.written
            )),
            Field::text(if self.to_exceptions.is_empty() {
                "-".to_string()
            } else {
                self.to_exceptions.join("; ")
            }),
        ]
    }

    fn outcome_failures(&self) -> u64 {
        self.sessions.lost + self.mixed_reads.lost
    }

    fn grid(&self) -> Option<GridCell> {
        Some(GridCell {
            title: "Client-stack transitions",
            group: "sessions".into(),
            row: self.from.clone(),
            col: self.to.clone(),
            text: format!("kept {}/{}", self.sessions.kept, self.sessions.written),
        })
    }
}
