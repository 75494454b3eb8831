//! Scenario parameters as written in `scenarios/*.toml`, in a matrix's `[scenario]` table (which
//! may `use` a file and override fields), and in `[[axes.variant]]` entries (which override
//! further). All fields are optional so the three layers merge field by field; `resolve` in each
//! scenario module fills defaults and checks ranges.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::HumanDuration;

/// How the server goes down and comes back in a persistence scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartKind {
    Graceful,
    Nosave,
    /// `SHUTDOWN SAVE`: a snapshot even with no save points configured.
    Save,
    Kill,
}

/// What happens to the faulted node in an `outage`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL (the default), restarted after `down_for`.
    #[default]
    Kill,
    /// A graceful stop, restarted after `down_for`.
    Stop,
    /// A replica stops replicating (`REPLICAOF NO ONE`) and keeps serving what it had; it is
    /// attached to the primary again after `down_for` and resynchronises.
    Detach,
    /// The node is frozen (SIGSTOP, `docker pause`): it keeps its connections and answers
    /// nothing; it runs on after `down_for` with what it had (a replica catches up).
    Pause,
    /// A replica's link to the primary is cut (it is pointed at a port where nothing answers):
    /// it stays a read-only replica and keeps serving what it had, falling behind; after
    /// `down_for` it is pointed back and catches up (a partial resync when the backlog holds
    /// what it missed).
    Lag,
}

/// A scenario kind's name as written (`kind = "cache-ops"`). Which names exist is the
/// scenario registry's business (`scenario::KINDS`): it checks the name when it resolves.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScenarioKind(String);

/// A string here; the schema generator (`config::schema`) lists the registry's kinds in it.
impl schemars::JsonSchema for ScenarioKind {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ScenarioKind".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

impl ScenarioKind {
    pub fn new(name: &str) -> ScenarioKind {
        ScenarioKind(name.to_string())
    }

    pub fn name(&self) -> &str {
        &self.0
    }
}

/// Written like a type name (`CacheOps` for `cache-ops`), as in cell listings.
impl std::fmt::Debug for ScenarioKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for word in self.0.split('-') {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                write!(f, "{}{}", first.to_ascii_uppercase(), chars.as_str())?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyDistribution {
    Uniform,
    Zipf,
}

/// Relative weights of the operations in the `cache-ops` mix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpMix {
    #[serde(default)]
    pub get: u32,
    #[serde(default)]
    pub set: u32,
    #[serde(default)]
    pub del: u32,
    #[serde(default)]
    pub incr: u32,
    #[serde(default)]
    pub expire: u32,
}

/// A value size: a fixed number of bytes, or `[min, max]` drawn uniformly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ValueSize {
    Fixed(usize),
    Range([usize; 2]),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioParams {
    /// Which scenario this is; required in a scenario file or an inline `[scenario]`.
    pub kind: Option<ScenarioKind>,
    /// Matrix `[scenario]` only: the scenario file this table overrides, relative to the matrix
    /// file or the folder above it.
    #[serde(rename = "use")]
    #[schemars(with = "Option<PathBuf>")]
    pub use_file: Option<toml::Spanned<PathBuf>>,
    /// `[[axes.variant]]` only: the variant's name in cell ids.
    pub label: Option<String>,

    /// Concurrent connections, each driven by its own task.
    pub connections: Option<u32>,
    /// Commands sent per round trip (1 = no pipelining).
    pub pipeline: Option<u32>,
    /// How long to measure (after warm-up). Exclusive with `ops`.
    pub duration: Option<HumanDuration>,
    /// How many operations to measure (after warm-up). Exclusive with `duration`.
    pub ops: Option<u64>,
    /// Run this long before recording; not counted in any statistic.
    pub warmup: Option<HumanDuration>,
    /// Open-loop total rate in ops/s; latency then counts from each op's intended send time
    /// (coordinated omission corrected). Omit for closed-loop: as fast as the server answers.
    pub rate: Option<u64>,
    /// Number of distinct keys.
    pub keyspace: Option<u64>,
    /// cache-ops: SET this many keys of the keyspace (values of `value_size`) before measuring,
    /// so GETs can hit; outside the measured window.
    pub fill: Option<u64>,
    pub distribution: Option<KeyDistribution>,
    /// Zipf exponent (s) when `distribution = "zipf"`.
    pub zipf_exponent: Option<f64>,
    pub value_size: Option<ValueSize>,
    /// TTL for SET (as SET EX) and EXPIRE; omit for keys without expiry.
    pub ttl: Option<HumanDuration>,
    /// A reply slower than this counts as a timeout error.
    pub op_timeout: Option<HumanDuration>,
    /// Errors / operations above which the cell fails (default 0: any error fails).
    pub max_error_rate: Option<f64>,
    /// Random seed for key/op choices (default: fixed, so runs are comparable).
    pub seed: Option<u64>,
    pub mix: Option<OpMix>,
    /// cache-ops: log in as this `[[server.users]]` ACL user instead of the harness's own, so a
    /// user's rules (and their cost) are measured.
    pub acl_user: Option<String>,

    /// login-flow: concurrent users, each with its own cookie jar.
    pub users: Option<u32>,
    /// login-flow: flows per user. Exclusive with `duration`.
    pub iterations: Option<u32>,
    /// login-flow: authenticated reads per flow.
    pub reads: Option<u32>,
    /// login-flow: users started per second (default: all within a second).
    pub hatch_rate: Option<f64>,

    /// session-persistence, durability: how the server goes down (graceful, nosave, save, kill).
    pub restart: Option<RestartKind>,
    /// session-persistence, durability: wait this long after the writes before the stop.
    pub restart_delay: Option<HumanDuration>,
    /// session-persistence, durability: restart with this persistence instead of the cell's.
    pub restart_persistence: Option<crate::server::Persistence>,
    /// durability: the primary is stopped (`restart`) and not restarted; the acknowledged writes
    /// are read back from the replica that takes over (the one the Sentinels promote, or
    /// `replica-1` promoted with `REPLICAOF NO ONE` without Sentinels). Needs replicas.
    pub failover: Option<bool>,
    /// durability: send `WAIT` for this many replicas after each SET; a write counts as
    /// acknowledged only when WAIT reports that many have it.
    pub wait_replicas: Option<u32>,
    /// durability: WAIT's timeout (default 1s).
    pub wait_timeout: Option<HumanDuration>,
    /// outage: when the server is killed, seconds into the flow.
    pub down_at: Option<HumanDuration>,
    /// outage: how long it stays down.
    pub down_for: Option<HumanDuration>,
    /// outage: a login must work again within this long after the server returns.
    pub recovery_timeout: Option<HumanDuration>,
    /// outage: fail if any request failed while the server was down (a fallback is expected).
    pub expect_available: Option<bool>,
    /// outage: users logged in before the server goes down, reading as themselves throughout.
    pub logged_in_users: Option<u32>,
    /// outage: the node of the cell's topology that goes down (`primary`, the default;
    /// `replica-1`, `sentinel-2`, `shard-2`, ...).
    pub node: Option<String>,
    /// outage: what happens to it (`kill`, the default; `stop`; `pause`; `detach` or `lag`
    /// for a replica).
    pub fault: Option<FaultKind>,
    /// server-upgrade: the server started on the data the cell's server wrote (`redis@7.4`);
    /// rolling-upgrade: the server attached as a replica and switched over to.
    pub to: Option<crate::server::ServerRef>,
    /// rolling-upgrade: when the app's service address moves to `to`, seconds into the flow.
    pub switch_at: Option<HumanDuration>,
    /// stack-transition: the `[stacks]` entry that serves the users after the cell's stack.
    pub to_stack: Option<String>,
    /// stack-transition: the `[settings]` entry the `to` app runs with (serializer, compressor,
    /// ...); default: the cell's settings.
    pub to_settings: Option<String>,
}

impl ScenarioParams {
    /// Fields every kind takes; each kind lists the others it reads (`scenario::Scenario::FIELDS`).
    pub const ANY_KIND: &'static [&'static str] = &["op_timeout", "max_error_rate"];

    /// As JSON, without the fields that only say where the parameters come from.
    fn values(&self) -> serde_json::Map<String, serde_json::Value> {
        let plain = ScenarioParams {
            use_file: None,
            label: None,
            ..self.clone()
        };
        match serde_json::to_value(plain).expect("params serialize") {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("params serialize to an object"),
        }
    }

    /// Reject fields that `kind` does not read (`fields`, besides `ANY_KIND`).
    pub fn check_applicable(&self, kind: &str, fields: &[&str]) -> Result<(), String> {
        for (field, value) in self.values() {
            if value.is_null() || field == "kind" || Self::ANY_KIND.contains(&field.as_str()) {
                continue;
            }
            if !fields.contains(&field.as_str()) {
                return Err(format!("field `{field}` does not apply to {kind}"));
            }
        }
        Ok(())
    }
}

/// A count such as `users` or `connections`: `value`, else `default`; 0 is refused.
pub fn at_least_one<T: Copy + PartialEq + Default>(
    value: Option<T>,
    field: &str,
    default: T,
) -> Result<T, String> {
    match value {
        Some(v) if v == T::default() => Err(format!("field `{field}` must be at least 1")),
        v => Ok(v.unwrap_or(default)),
    }
}

/// `max_error_rate`: a fraction of operations allowed to fail, 0 unless set.
pub fn max_error_rate(value: Option<f64>) -> Result<f64, String> {
    let rate = value.unwrap_or(0.0);
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err("field `max_error_rate` must be between 0 and 1".into())
    }
}

impl ScenarioParams {
    /// Fields set in `top` replace those in `self`.
    pub fn overlay(&self, top: &ScenarioParams) -> ScenarioParams {
        let mut merged = self.values();
        for (field, value) in top.values() {
            if !value.is_null() {
                merged.insert(field, value);
            }
        }
        let mut out: ScenarioParams =
            serde_json::from_value(merged.into()).expect("params read back what they wrote");
        out.use_file = self.use_file.clone();
        out.label = self.label.clone();
        // A layer that sets how long to run replaces the other ways of saying it.
        if (top.ops.is_some() || top.iterations.is_some()) && top.duration.is_none() {
            out.duration = None;
        }
        if top.duration.is_some() {
            if top.ops.is_none() {
                out.ops = None;
            }
            if top.iterations.is_none() {
                out.iterations = None;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_refuse_zero_and_rates_stay_fractions() {
        assert_eq!(at_least_one(None, "users", 20u32), Ok(20));
        assert_eq!(at_least_one(Some(3u32), "users", 20), Ok(3));
        assert_eq!(
            at_least_one(Some(0u64), "keyspace", 10),
            Err("field `keyspace` must be at least 1".to_string())
        );
        assert_eq!(max_error_rate(None), Ok(0.0));
        assert_eq!(max_error_rate(Some(0.25)), Ok(0.25));
        assert!(max_error_rate(Some(1.5))
            .unwrap_err()
            .contains("max_error_rate"));
        assert!(max_error_rate(Some(f64::NAN)).is_err());
    }

    #[test]
    fn a_layer_replaces_only_the_fields_it_sets() {
        let base: ScenarioParams = toml::from_str(
            "kind = \"cache-ops\"\nconnections = 4\nops = 100\nmix = { get = 1 }\nlabel = \"x\"",
        )
        .unwrap();
        let top: ScenarioParams =
            toml::from_str("duration = \"2s\"\nrestart = \"kill\"\nttl = \"1m\"\nlabel = \"y\"")
                .unwrap();
        let out = base.overlay(&top);
        assert_eq!(out.kind, Some(ScenarioKind::new("cache-ops")));
        assert_eq!(out.connections, Some(4));
        assert_eq!(out.mix, base.mix);
        assert_eq!(out.duration, top.duration);
        assert_eq!(out.ttl, top.ttl);
        assert_eq!(out.restart, Some(RestartKind::Kill));
        // `duration` replaces `ops`; the label is the base's own.
        assert_eq!(out.ops, None);
        assert_eq!(out.label.as_deref(), Some("x"));
    }
}
