//! Upper (and lower) bounds on every count and duration a user writes, checked where the file is
//! read, so `check` rejects what `run` would reject or choke on. A value past a bound is almost
//! always a typo (a digit too many, `0s`), and some would make the harness allocate or wait
//! absurdly (4 billion repeats, a billion connections) before any cell runs.

use std::time::Duration;

use super::scenario_file::ScenarioParams;

/// Runs of each cell; more is never a measurement plan, and every repeat is a full cell.
pub const MAX_REPEAT: u32 = 1_000;
/// Cells of one matrix (repeats counted): a run this big takes days at seconds per cell.
pub const MAX_CELLS: u64 = 10_000;

/// A bound on one field: its name, the largest value, and why.
struct Count {
    field: &'static str,
    max: u64,
    why: &'static str,
}

const COUNTS: &[Count] = &[
    Count {
        field: "connections",
        max: 50_000,
        why: "each is one TCP connection from 127.0.0.1 to the server's one port, and Linux has \
              at most ~64k local ports per destination",
    },
    Count {
        field: "users",
        max: 10_000,
        why: "each user is a task with its own HTTP client and cookie jar against one local app",
    },
    Count {
        field: "logged_in_users",
        max: 10_000,
        why: "each user is a task with its own HTTP client and cookie jar against one local app",
    },
    Count {
        field: "pipeline",
        max: 10_000,
        why: "a round trip's commands are buffered whole on both sides",
    },
    Count {
        field: "ops",
        max: 1_000_000_000_000,
        why: "at a million operations a second that is over eleven days",
    },
    Count {
        field: "iterations",
        max: 100_000_000,
        why: "flows per user; even one user would run for weeks",
    },
    Count {
        field: "reads",
        max: 1_000_000,
        why: "reads per flow; a flow this long never finishes",
    },
    Count {
        field: "keyspace",
        max: 1 << 32,
        why: "keys are numbered with 32 bits",
    },
    Count {
        field: "rate",
        max: 100_000_000,
        why: "ops/s; far beyond what one server on loopback answers",
    },
];

/// Durations: (field, why it must be above 0s if it must, longest, why not longer).
type DurationBound = (&'static str, Option<&'static str>, Duration, &'static str);
const DURATIONS: &[DurationBound] = &[
    (
        "duration",
        Some("nothing would be measured"),
        WEEK,
        "a measured window longer than a week is a typo",
    ),
    ("warmup", None, DAY, "a warm-up longer than a day is a typo"),
    (
        "op_timeout",
        Some("every operation would time out"),
        HOUR,
        "a reply timeout over an hour is a typo",
    ),
    (
        "ttl",
        Some("the server refuses SET EX 0"),
        YEAR,
        "a TTL over a year is a typo",
    ),
    ("restart_delay", None, DAY, "over a day is a typo"),
    ("down_at", None, DAY, "over a day is a typo"),
    ("switch_at", None, DAY, "over a day is a typo"),
    (
        "down_for",
        Some("an outage of 0s is no outage"),
        DAY,
        "an outage over a day is a typo",
    ),
    (
        "recovery_timeout",
        Some("0s can never be met"),
        DAY,
        "over a day is a typo",
    ),
];

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// The first field of `p` out of bounds: its name and what is wrong.
pub fn check_params(p: &ScenarioParams) -> Result<(), (&'static str, String)> {
    let v = serde_json::to_value(p).expect("params serialize");
    for c in COUNTS {
        if let Some(n) = v.get(c.field).and_then(serde_json::Value::as_u64) {
            if n > c.max {
                return Err((
                    c.field,
                    format!(
                        "field `{}` = {n} is above the limit of {}: {}",
                        c.field, c.max, c.why
                    ),
                ));
            }
        }
    }
    let durations = [
        ("duration", p.duration),
        ("warmup", p.warmup),
        ("op_timeout", p.op_timeout),
        ("ttl", p.ttl),
        ("restart_delay", p.restart_delay),
        ("down_at", p.down_at),
        ("switch_at", p.switch_at),
        ("down_for", p.down_for),
        ("recovery_timeout", p.recovery_timeout),
    ];
    for (field, value) in durations {
        let Some(d) = value else { continue };
        let (_, zero, max, why) = DURATIONS
            .iter()
            .find(|(f, ..)| *f == field)
            .expect("every duration field has a bound");
        if let (Some(zero), true) = (zero, d.0.is_zero()) {
            return Err((field, format!("field `{field}` must be above 0s: {zero}")));
        }
        if d.0 > *max {
            return Err((
                field,
                format!(
                    "field `{field}` = {d} is above the limit of {}: {why}",
                    super::HumanDuration(*max)
                ),
            ));
        }
    }
    if let Some(r) = p.hatch_rate {
        if !(r > 0.0 && r.is_finite()) {
            return Err(("hatch_rate", "field `hatch_rate` must be above 0".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(toml: &str) -> ScenarioParams {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn huge_counts_and_zero_durations_are_refused() {
        assert!(check_params(&params("connections = 50000\nduration = \"1h\"")).is_ok());
        let (field, msg) = check_params(&params("connections = 1000000000")).unwrap_err();
        assert_eq!(field, "connections");
        assert!(msg.contains("limit of 50000"), "{msg}");
        assert_eq!(
            check_params(&params("duration = \"0s\"")).unwrap_err().0,
            "duration"
        );
        assert_eq!(
            check_params(&params("duration = \"500000000y\""))
                .unwrap_err()
                .0,
            "duration"
        );
        assert_eq!(
            check_params(&params("op_timeout = \"0s\"")).unwrap_err().0,
            "op_timeout"
        );
        assert!(check_params(&params("warmup = \"0s\"")).is_ok());
    }
}
