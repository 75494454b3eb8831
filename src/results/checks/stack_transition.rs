//! `stack-transition`: sessions and cache entries created through one client stack and settings,
//! read through another serving the same server (a deploy that switches Django, redis-py,
//! django-redis, the serializer or the compressor under live users), and entries the new side
//! wrote read back by the old one.

use std::collections::BTreeMap;

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
    /// Cache entries written through `from`, read through `to`, by kind (int, text, dict).
    #[serde(default)]
    pub values: BTreeMap<String, Items>,
    /// Cache entries written through `to` while both serve, read back through `from`.
    #[serde(default)]
    pub values_back: BTreeMap<String, Items>,
    /// Exceptions the `to` app logged, by signature.
    pub to_exceptions: Vec<String>,
    /// Nothing was restarted and nothing evicted: every session and entry should read the same.
    pub matches: bool,
}

impl CheckView for StackTransitionCheck {
    const SECTION: Section = Section {
        title: "Client-stack transitions: sessions and cache entries of one stack read by another",
        headers: &[
            "from",
            "to",
            "sessions kept",
            "mixed reads ok",
            "entries read by to",
            "to's entries read by from",
            "to's exceptions",
        ],
    };

    fn summary(&self) -> String {
        format!(
            "{}/{} sessions valid through {}, mixed reads {}/{}, cache entries read by `to` {}, \
             `to`'s entries read back by `from` {}",
            self.sessions.kept,
            self.sessions.written,
            self.to,
            self.mixed_reads.kept,
            self.mixed_reads.written,
            by_kind(&self.values),
            by_kind(&self.values_back),
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
            Field::text(by_kind(&self.values)),
            Field::text(by_kind(&self.values_back)),
            Field::text(if self.to_exceptions.is_empty() {
                "-".to_string()
            } else {
                self.to_exceptions.join("; ")
            }),
        ]
    }

    fn outcome_failures(&self) -> u64 {
        let entries = |m: &BTreeMap<String, Items>| -> u64 {
            m.values().map(|i| i.lost + i.changed + i.unknown).sum()
        };
        self.sessions.lost
            + self.mixed_reads.lost
            + entries(&self.values)
            + entries(&self.values_back)
    }

    fn grid(&self) -> Option<GridCell> {
        Some(GridCell {
            title: "Client-stack transitions",
            group: "sessions and cache entries".into(),
            row: self.from.clone(),
            col: self.to.clone(),
            text: format!(
                "sessions {}/{}, entries {}/{} and back {}/{}",
                self.sessions.kept,
                self.sessions.written,
                total(&self.values).kept,
                total(&self.values).written,
                total(&self.values_back).kept,
                total(&self.values_back).written
            ),
        })
    }
}

fn total(m: &BTreeMap<String, Items>) -> Items {
    Items::total(m.values())
}

/// "6/9 (int 3/3, text 0/3 unreadable 3, dict 3/3)", or "-" when nothing was written.
fn by_kind(m: &BTreeMap<String, Items>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    let t = total(m);
    let parts: Vec<String> = m
        .iter()
        .map(|(kind, i)| {
            let mut p = format!("{kind} {}/{}", i.kept, i.written);
            for (n, word) in [
                (i.changed, "changed"),
                (i.lost, "missing"),
                (i.unknown, "unreadable"),
            ] {
                if n > 0 {
                    p += &format!(" {word} {n}");
                }
            }
            p
        })
        .collect();
    format!("{}/{} ({})", t.kept, t.written, parts.join(", "))
}
