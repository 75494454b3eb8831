//! The `topology` axis: how many servers a cell runs and in which roles. `standalone` is one
//! server (what every cell ran before topologies existed); the others are deployments of
//! several nodes of the cell's server version (see `deployment.rs`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a cell's servers are arranged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Topology {
    /// One server.
    #[default]
    Standalone,
    /// A primary and N replicas (`replica:N`).
    Replicas(u8),
    /// Three Sentinels over a primary and N replicas (`sentinel`, `sentinel:N`).
    Sentinel { replicas: u8 },
    /// M primaries sharing the 16384 hash slots, each with R replicas (`cluster:M`, `cluster:M:R`).
    Cluster { primaries: u8, replicas: u8 },
}

/// Sentinels in a `sentinel` topology: the smallest number that can agree (quorum 2) while
/// one of them is down, as Redis's Sentinel documentation recommends.
pub const SENTINELS: u8 = 3;
/// The name the Sentinels monitor the primary under (the service name in client settings).
pub const SENTINEL_SERVICE: &str = "cachegate";

impl Topology {
    pub fn is_standalone(&self) -> bool {
        *self == Topology::Standalone
    }

    /// Replicas per primary.
    pub fn replicas(&self) -> u8 {
        match *self {
            Topology::Standalone => 0,
            Topology::Replicas(n) => n,
            Topology::Sentinel { replicas } => replicas,
            Topology::Cluster { replicas, .. } => replicas,
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Topology::Cluster { .. })
    }

    pub fn has_sentinels(&self) -> bool {
        matches!(self, Topology::Sentinel { .. })
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Topology::Standalone => f.write_str("standalone"),
            Topology::Replicas(n) => write!(f, "replica:{n}"),
            Topology::Sentinel { replicas: 1 } => f.write_str("sentinel"),
            Topology::Sentinel { replicas } => write!(f, "sentinel:{replicas}"),
            Topology::Cluster {
                primaries,
                replicas: 0,
            } => write!(f, "cluster:{primaries}"),
            Topology::Cluster {
                primaries,
                replicas,
            } => write!(f, "cluster:{primaries}:{replicas}"),
        }
    }
}

impl schemars::JsonSchema for Topology {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Topology".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // The ranges `from_str` accepts.
        crate::config::schema::pattern_string(
            "^(standalone|replica:0*[1-5]|sentinel(:0*[1-3])?|cluster:0*[1-9](:0*[0-2])?)$",
            "standalone, replica:N (1-5), sentinel or sentinel:N (1-3 replicas), cluster:M \
             (1-9 primaries) or cluster:M:R (0-2 replicas each).",
        )
    }
}

impl std::str::FromStr for Topology {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const FORMS: &str = "standalone, replica:N (1-5), sentinel or sentinel:N (1-3 replicas), \
                             cluster:M (1-9 primaries) or cluster:M:R (0-2 replicas each)";
        let number = |text: &str, what: &str, range: std::ops::RangeInclusive<u8>| {
            text.parse::<u8>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    format!(
                        "topology {s:?}: {what} must be {}-{} (one of: {FORMS})",
                        range.start(),
                        range.end()
                    )
                })
        };
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["standalone"] => Ok(Topology::Standalone),
            ["replica", n] => Ok(Topology::Replicas(number(n, "the replica count", 1..=5)?)),
            ["sentinel"] => Ok(Topology::Sentinel { replicas: 1 }),
            ["sentinel", n] => Ok(Topology::Sentinel {
                replicas: number(n, "the replica count", 1..=3)?,
            }),
            ["cluster", m] => Ok(Topology::Cluster {
                primaries: number(m, "the primary count", 1..=9)?,
                replicas: 0,
            }),
            ["cluster", m, r] => Ok(Topology::Cluster {
                primaries: number(m, "the primary count", 1..=9)?,
                replicas: number(r, "the replicas per primary", 0..=2)?,
            }),
            _ => Err(format!("unknown topology {s:?} (one of: {FORMS})")),
        }
    }
}

impl TryFrom<String> for Topology {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Topology> for String {
    fn from(t: Topology) -> String {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_reads_back_as_written() {
        for text in [
            "standalone",
            "replica:1",
            "replica:5",
            "sentinel",
            "sentinel:2",
            "cluster:3",
            "cluster:3:1",
        ] {
            let t: Topology = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
        }
        assert_eq!(
            "sentinel:1".parse::<Topology>().unwrap(),
            Topology::Sentinel { replicas: 1 }
        );
    }

    #[test]
    fn out_of_range_and_unknown_forms_say_what_is_accepted() {
        for bad in [
            "replica",
            "replica:0",
            "replica:x",
            "cluster:10",
            "mesh",
            "cluster:3:3",
        ] {
            let e = bad.parse::<Topology>().unwrap_err();
            assert!(e.contains("replica:N"), "{bad}: {e}");
        }
    }
}
