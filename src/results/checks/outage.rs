//! `outage`: what the app answered while its server was down, and how soon logins worked again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CheckView, Field, Section};

/// One flow step while the server was down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDuringOutage {
    pub step: String,
    pub ok: u64,
    pub errors: u64,
    /// Slowest answer, ok or not: retrying clients make users wait.
    pub max_latency_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutageReport {
    /// Seconds into the flow when the server was stopped, and for how long it stayed down.
    pub down_at_seconds: f64,
    pub down_for_seconds: f64,
    pub during: Vec<StepDuringOutage>,
    /// HTTP status codes answered while the server was down ("error" for no answer).
    pub statuses_during: BTreeMap<String, u64>,
    /// Did every request during the outage succeed (a working fallback)?
    pub available_during: bool,
    /// Seconds from the server's return until the last failed request; 0 if none failed after.
    pub recovery_seconds: f64,
    pub recovered: bool,
    /// Users logged in before the server went down, reading as themselves throughout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logged_in: Option<LoggedInUsers>,
    /// The node that was faulted and how (`primary killed`, `replica-1 detached`), in a
    /// topology; absent for one server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// What the topology promises (with its source), for the reader of a topology cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promise: Option<String>,
    /// Sentinel topologies: seconds from the fault until the Sentinels named another primary
    /// (absent: they did not within the flow, or there are no Sentinels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_seconds: Option<f64>,
    /// The node the Sentinels promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted: Option<String>,
    /// Seconds from the first to the end of the last failed login that started after the
    /// fault: how long logins failed (0: none did).
    #[serde(default)]
    pub logins_failed_seconds: f64,
    /// A faulted replica: how many bytes of the primary's replication stream it had not applied
    /// when the fault ended (absent: it was down or frozen, or the node is not a replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_behind_bytes: Option<u64>,
    /// A faulted replica: seconds from the repair until it was linked again and had what the
    /// primary had then (absent: not within the flow, or the node is not a replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caught_up_seconds: Option<f64>,
}

/// What users who were already logged in got from authenticated reads around an outage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedInUsers {
    pub users: u64,
    /// Reads that started before the server went down, while it was down, after it returned.
    pub before: ReadsSeen,
    pub during: ReadsSeen,
    pub after: ReadsSeen,
    /// By second since the flow started (the server went down at `down_at_seconds`).
    pub per_second: Vec<ReadsInSecond>,
    /// Users whose last read found them logged out: sessions lost by the fault.
    #[serde(default)]
    pub sessions_lost: u64,
}

/// Authenticated reads by what the user got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadsSeen {
    /// The app still knew the user.
    pub ok: u64,
    /// The app answered as if the user were not logged in (401/403/302, or a 2xx without the
    /// user): a silent logout.
    pub logged_out: u64,
    /// The app failed (5xx, other status, no answer).
    pub failed: u64,
    /// HTTP status codes ("no answer" when there was none).
    pub statuses: BTreeMap<String, u64>,
    pub max_latency_ms: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadsInSecond {
    pub second: u64,
    pub ok: u64,
    pub logged_out: u64,
    pub failed: u64,
}

impl OutageReport {
    /// A faulted replica's lag and catch-up, for the summary and the table ("" otherwise).
    fn replication(&self) -> String {
        let mut out = String::new();
        if let Some(b) = self.replica_behind_bytes {
            out.push_str(&format!("; {b} bytes behind the primary at the end"));
        }
        if let Some(s) = self.caught_up_seconds {
            out.push_str(&format!("; caught up {s:.2} s after the repair"));
        }
        out
    }
}

impl CheckView for OutageReport {
    fn fault_windows(&self) -> Vec<super::FaultWindow> {
        let mut out = vec![super::FaultWindow {
            label: self.fault.clone().unwrap_or_else(|| "server down".into()),
            from_seconds: self.down_at_seconds,
            to_seconds: self.down_at_seconds + self.down_for_seconds,
        }];
        if let Some(f) = self.failover_seconds {
            let at = self.down_at_seconds + f;
            out.push(super::FaultWindow {
                label: format!(
                    "failover to {}",
                    self.promoted.as_deref().unwrap_or("another node")
                ),
                from_seconds: at,
                to_seconds: at,
            });
        }
        out
    }

    const SECTION: Section = Section {
        title: "Outages",
        headers: &[
            "down",
            "while down (per step: ok/tried, slowest)",
            "statuses while down",
            "login works again after",
            "users logged in before (ok / logged out / failed: while down; after)",
        ],
    };

    fn summary(&self) -> String {
        let failed: u64 = self.during.iter().map(|s| s.errors).sum();
        let served: u64 = self.during.iter().map(|s| s.ok).sum();
        let back = if self.recovered {
            format!("login back in {:.2}s", self.recovery_seconds)
        } else {
            "did not recover".into()
        };
        let logged_in = self
            .logged_in
            .as_ref()
            .map(|l| {
                let d = &l.during;
                format!(
                    "; logged-in users while down: {} ok, {} logged out, {} failed",
                    d.ok, d.logged_out, d.failed
                )
            })
            .unwrap_or_default();
        let what = self.fault.as_deref().unwrap_or("down");
        let failover = match (self.failover_seconds, &self.promoted) {
            (Some(s), Some(node)) => format!("; {node} promoted after {s:.2}s"),
            _ => String::new(),
        };
        // Counted per user only since topologies: older results have no count to show.
        let lost = match (&self.fault, &self.logged_in) {
            (Some(_), Some(l)) => format!("; sessions lost: {} of {}", l.sessions_lost, l.users),
            _ => String::new(),
        };
        format!(
            "{what} {:.1}s: {served} ok, {failed} failed; {back}{failover}{logged_in}{lost}{}",
            self.down_for_seconds,
            self.replication()
        )
    }

    fn metric(&self, name: &str) -> Option<f64> {
        (name == "recovery_seconds").then_some(self.recovery_seconds)
    }

    fn row(&self) -> Vec<Field> {
        let steps: Vec<String> = self
            .during
            .iter()
            .map(|s| {
                format!(
                    "{} {}/{} ({:.0} ms)",
                    s.step,
                    s.ok,
                    s.ok + s.errors,
                    s.max_latency_ms
                )
            })
            .collect();
        let statuses: Vec<String> = self
            .statuses_during
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let mut back = if self.recovered {
            format!("{:.2} s", self.recovery_seconds)
        } else {
            "did not recover".into()
        };
        if self.fault.is_some() {
            back.push_str(&format!(
                "; logins failed for {:.2} s",
                self.logins_failed_seconds
            ));
        }
        if let (Some(s), Some(node)) = (self.failover_seconds, &self.promoted) {
            back.push_str(&format!("; {node} promoted {s:.2} s after the fault"));
        }
        let logged_in = self.logged_in.as_ref().map_or(Field::text("-"), |l| {
            let seen = |r: &ReadsSeen| {
                let statuses: Vec<String> = r
                    .statuses
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                format!(
                    "{} / {} / {} ({})",
                    r.ok,
                    r.logged_out,
                    r.failed,
                    statuses.join(", ")
                )
            };
            let seconds: Vec<String> = l
                .per_second
                .iter()
                .map(|s| format!("{}s {}/{}/{}", s.second, s.ok, s.logged_out, s.failed))
                .collect();
            let lost = match self.fault {
                Some(_) => format!("; sessions lost: {}", l.sessions_lost),
                None => String::new(),
            };
            Field::text(format!(
                "{} users; while down: {}; after: {}{lost}",
                l.users,
                seen(&l.during),
                seen(&l.after)
            ))
            .note(None, format!("per second: {}", seconds.join(", ")))
        });
        vec![
            Field::text(format!(
                "{}{:.1} s at {:.1} s{}",
                self.fault
                    .as_ref()
                    .map_or(String::new(), |f| format!("{f}: ")),
                self.down_for_seconds,
                self.down_at_seconds,
                self.replication()
            )),
            Field::text(steps.join(", ")),
            Field::text(statuses.join(", ")),
            Field::text(back),
            logged_in,
        ]
    }
}
