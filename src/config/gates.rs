//! The gate language of a matrix's `[gates]` table (e.g. `"get.p99" = "< 2ms"`): metric names
//! and conditions, parsed and checked where the file is read. Judging results against gates is
//! `crate::judge`'s.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A metric of a cell: `[OP.]p50|p90|p99|p999|max|mean|throughput|errors` (latency of the
/// successful operations; `failed_p99` etc. of the failed ones, `waited_p99` etc. of every
/// operation), or a verification
/// outcome: `lost` (sessions or writes lost), `sessions_lost`, `logins_refused`, `recovery_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Metric {
    pub op: Option<String>,
    pub name: String,
}

pub const OP_METRICS: &[&str] = &[
    "p50",
    "p90",
    "p99",
    "p999",
    "max",
    "mean",
    "throughput",
    "errors",
    "failed_p50",
    "failed_p99",
    "failed_max",
    "waited_p50",
    "waited_p99",
    "waited_max",
];
pub const CHECK_METRICS: &[&str] = &[
    "lost",
    "sessions_lost",
    "logins_refused",
    "recovery_seconds",
];

impl FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (op, name) = match s.rsplit_once('.') {
            Some((op, name)) => (Some(op.to_string()), name),
            None => (None, s),
        };
        let known = OP_METRICS.contains(&name) || (op.is_none() && CHECK_METRICS.contains(&name));
        if !known {
            return Err(format!(
                "unknown metric `{s}`: use [OP.]{} or one of {}",
                OP_METRICS.join("|"),
                CHECK_METRICS.join(", ")
            ));
        }
        Ok(Metric {
            op,
            name: name.to_string(),
        })
    }
}

impl schemars::JsonSchema for Metric {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Metric".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        super::schema::pattern_string(
            &format!(
                r"^((.+\.)?({})|{})$",
                OP_METRICS.join("|"),
                CHECK_METRICS.join("|")
            ),
            "[OP.]p50|p90|p99|p999|max|mean|throughput|errors (and failed_/waited_ latencies), \
             or a verification metric: lost, sessions_lost, logins_refused, recovery_seconds.",
        )
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.op {
            Some(op) => write!(f, "{op}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl TryFrom<String> for Metric {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Metric> for String {
    fn from(m: Metric) -> String {
        m.to_string()
    }
}

impl Metric {
    /// Latencies are in µs; higher is worse for everything but throughput.
    pub fn higher_is_better(&self) -> bool {
        self.name == "throughput"
    }

    pub fn is_latency(&self) -> bool {
        let name = self.name.trim_start_matches("failed_");
        matches!(
            name.trim_start_matches("waited_"),
            "p50" | "p90" | "p99" | "p999" | "max" | "mean"
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmp {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
}

/// A condition like `< 2ms`, `> 50000`, `== 0`. Durations are converted to µs (latency metrics)
/// or seconds (recovery_seconds) when the gate is checked; a bare number is taken as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Condition {
    pub cmp: Cmp,
    /// The number as written, and its duration in µs if it had a unit.
    pub number: f64,
    pub duration_us: Option<f64>,
    text: String,
}

impl FromStr for Condition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (cmp, rest) = [
            ("<=", Cmp::Le),
            (">=", Cmp::Ge),
            ("==", Cmp::Eq),
            ("<", Cmp::Lt),
            (">", Cmp::Gt),
        ]
        .iter()
        .find_map(|(p, c)| t.strip_prefix(p).map(|r| (*c, r.trim())))
        .ok_or_else(|| {
            format!("bad condition `{s}`: start with <, <=, >, >= or ==, e.g. \"< 2ms\"")
        })?;
        let rest = rest.trim_end_matches("/s").trim();
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(rest.len());
        let (num, unit) = rest.split_at(split);
        let number: f64 = num
            .replace('_', "")
            .parse()
            .map_err(|_| format!("bad condition `{s}`: `{num}` is not a number"))?;
        let duration_us = match unit.trim() {
            "" => None,
            "us" | "µs" => Some(number),
            "ms" => Some(number * 1e3),
            "s" => Some(number * 1e6),
            other => {
                return Err(format!(
                    "bad condition `{s}`: unknown unit `{other}` (us, ms, s)"
                ))
            }
        };
        Ok(Condition {
            cmp,
            number,
            duration_us,
            text: t.to_string(),
        })
    }
}

impl schemars::JsonSchema for Condition {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Condition".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        super::schema::pattern_string(
            r"^\s*(<=|>=|==|<|>)\s*([0-9][0-9_]*(\.[0-9_]*)?|\.[0-9][0-9_]*)\s*(us|µs|ms|s)?\s*(/s)*\s*$",
            "A comparison and a number, with a unit for latencies: \"< 2ms\", \"> 50000\", \
             \"== 0\".",
        )
    }
}

impl TryFrom<String> for Condition {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Condition> for String {
    fn from(c: Condition) -> String {
        c.text
    }
}

impl Condition {
    /// The threshold in the metric's unit.
    fn threshold(&self, metric: &Metric) -> f64 {
        match self.duration_us {
            Some(us) if metric.is_latency() => us,
            Some(us) if metric.name == "recovery_seconds" => us / 1e6,
            _ => self.number,
        }
    }

    pub fn holds(&self, metric: &Metric, value: f64) -> bool {
        let t = self.threshold(metric);
        match self.cmp {
            Cmp::Lt => value < t,
            Cmp::Le => value <= t,
            Cmp::Gt => value > t,
            Cmp::Ge => value >= t,
            Cmp::Eq => (value - t).abs() < 1e-9,
        }
    }
}

/// `[gates]` of a matrix: metric → condition.
pub type Gates = BTreeMap<Metric, Condition>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_and_metrics_parse() {
        let c: Condition = "< 2ms".parse().unwrap();
        let p99: Metric = "get.p99".parse().unwrap();
        assert!(c.holds(&p99, 1999.0) && !c.holds(&p99, 2000.0));
        let t: Metric = "throughput".parse().unwrap();
        assert!(">= 50_000/s"
            .parse::<Condition>()
            .unwrap()
            .holds(&t, 50_000.0));
        assert!("== 0"
            .parse::<Condition>()
            .unwrap()
            .holds(&"errors".parse().unwrap(), 0.0));
        assert!("<2 parsecs".parse::<Condition>().is_err());
        assert!("about 5".parse::<Condition>().is_err());
        assert!("get.lost".parse::<Metric>().is_err());
        assert!("p98".parse::<Metric>().is_err());
        let r: Metric = "recovery_seconds".parse().unwrap();
        assert!("< 5s".parse::<Condition>().unwrap().holds(&r, 4.0));
    }
}
