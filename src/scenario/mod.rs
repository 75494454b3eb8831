//! Scenarios: what load or verification a cell runs. Each kind lives in its own file: its
//! resolved configuration implements `Scenario` (parameters, whether it needs the app, planned
//! length, connections, gate metrics, run) and produces a `ScenarioOutput`; a verification kind
//! puts what it found in a `results::checks::Check`.
//!
//! Adding a kind: its file here (implementing `Scenario`), one line in `scenarios!` below, and,
//! if it reports a check, its shape in `results/checks/` with one line in `checks!` there. New
//! parameters are fields of `config::ScenarioParams`, where the file format is written down.

pub mod browser;
pub mod cache_ops;
pub mod cached_values;
pub mod cluster;
pub mod django_tests;
pub mod durability;
pub mod eviction;
pub mod fit;
pub mod login_flow;
pub mod memcache;
pub mod outage;
pub mod promise;
pub mod relay;
pub mod resp;
pub mod rolling_upgrade;
pub mod server_upgrade;
pub mod session_persistence;
pub mod stack_transition;
pub mod typed_keys;
pub mod workload;

use std::future::Future;

use serde::Serialize;

use crate::config::{ScenarioKind, ScenarioParams};
use crate::results::{ErrorCount, OpCounts, OpStats, TimelinePoint};

/// One scenario kind, implemented by its resolved configuration in the kind's own file. A new
/// kind implements this and is listed once in `scenarios!` below; what it found after the run
/// goes in a `results::checks::Check` variant (its shape, gate metrics and report rows).
pub trait Scenario: Sized {
    /// Its `kind` in scenario files.
    const KIND: &'static str;
    /// The `ScenarioParams` fields it reads, besides those every kind takes
    /// (`ScenarioParams::ANY_KIND`); the others are refused when set.
    const FIELDS: &'static [&'static str];
    /// Does it talk to a web app (bundled or external)?
    const NEEDS_APP: bool;
    /// Does it need the cell's stack without an app (a project's test suite)?
    const NEEDS_STACK: bool = false;
    /// The operation (or step) names it measures, `None` when they vary: a gate on another
    /// operation could never be checked.
    const OPS: Option<&'static [&'static str]>;
    /// The verification metrics (`config::gates::CHECK_METRICS`) its check reports.
    const CHECK_METRICS: &'static [&'static str] = &[];

    /// Fill in defaults and check ranges.
    fn from_params(p: &ScenarioParams) -> Result<Self, String>;
    /// Seconds it is planned to take, for the progress bar (0: unknown).
    fn planned_seconds(&self) -> u64 {
        0
    }
    /// Connections it opens to the server at once, for the file-descriptor check.
    fn connections(&self) -> u64 {
        0
    }
    /// Run against a cell's server (and app).
    fn run(&self, env: &mut CellEnv<'_>) -> impl Future<Output = ScenarioOutput>;
}

/// What the harness knows about a kind before any cell runs.
#[derive(Debug)]
pub struct KindInfo {
    pub name: &'static str,
    pub fields: &'static [&'static str],
    pub needs_app: bool,
    pub needs_stack: bool,
    pub ops: Option<&'static [&'static str]>,
    pub check_metrics: &'static [&'static str],
}

impl KindInfo {
    const fn of<T: Scenario>() -> KindInfo {
        KindInfo {
            name: T::KIND,
            fields: T::FIELDS,
            needs_app: T::NEEDS_APP,
            needs_stack: T::NEEDS_STACK,
            ops: T::OPS,
            check_metrics: T::CHECK_METRICS,
        }
    }
}

/// The registry: each kind's variant and configuration type, once. Generates `ScenarioConfig`
/// (a scenario with all parameters resolved) and `KINDS`.
macro_rules! scenarios {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// A scenario with all parameters resolved.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum ScenarioConfig {
            $($variant($ty)),*
        }

        /// Every scenario kind.
        pub const KINDS: &[KindInfo] = &[$(KindInfo::of::<$ty>()),*];

        impl ScenarioConfig {
            fn from_kind(kind: &str, p: &ScenarioParams) -> Option<Result<Self, String>> {
                $(
                    if kind == <$ty as Scenario>::KIND {
                        return Some(<$ty as Scenario>::from_params(p).map(ScenarioConfig::$variant));
                    }
                )*
                None
            }

            pub fn info(&self) -> &'static KindInfo {
                match self {
                    $(ScenarioConfig::$variant(_) => {
                        const INFO: KindInfo = KindInfo::of::<$ty>();
                        &INFO
                    })*
                }
            }

            /// Seconds the scenario is planned to take, for the progress bar (0: unknown).
            pub fn planned_seconds(&self) -> u64 {
                match self {
                    $(ScenarioConfig::$variant(c) => c.planned_seconds()),*
                }
            }

            /// Connections the scenario opens to the server at once, for the file-descriptor check.
            pub fn connections(&self) -> u64 {
                match self {
                    $(ScenarioConfig::$variant(c) => c.connections()),*
                }
            }

            /// Run against a cell's server (and app).
            pub async fn run(&self, env: &mut CellEnv<'_>) -> ScenarioOutput {
                match self {
                    $(ScenarioConfig::$variant(c) => c.run(env).await),*
                }
            }
        }
    };
}

scenarios! {
    CacheOps(cache_ops::CacheOpsConfig),
    LoginFlow(login_flow::LoginFlowConfig),
    SessionPersistence(session_persistence::SessionPersistenceConfig),
    Durability(durability::DurabilityConfig),
    Outage(outage::OutageConfig),
    Eviction(eviction::EvictionConfig),
    ServerUpgrade(server_upgrade::ServerUpgradeConfig),
    StackTransition(stack_transition::StackTransitionConfig),
    RollingUpgrade(rolling_upgrade::RollingUpgradeConfig),
    DjangoTests(django_tests::DjangoTestsConfig),
}

/// A kind by its name in scenario files.
pub fn kind_info(name: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.name == name)
}

impl ScenarioConfig {
    pub fn resolve(p: &ScenarioParams) -> Result<Self, String> {
        let Some(kind) = &p.kind else {
            return Err("field `kind` missing".into());
        };
        let info = kind_info(kind.name()).ok_or_else(|| {
            let known: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
            format!(
                "field `kind`: unknown scenario kind `{}` (known: {})",
                kind.name(),
                known.join(", ")
            )
        })?;
        p.check_applicable(info.name, info.fields)?;
        ScenarioConfig::from_kind(info.name, p).expect("every registered kind resolves")
    }

    pub fn kind(&self) -> ScenarioKind {
        ScenarioKind::new(self.info().name)
    }

    /// Does this scenario talk to a web app (bundled or external)?
    pub fn needs_app(&self) -> bool {
        self.info().needs_app
    }
}

/// What a scenario works with: the cell's server (which it may stop and restart), the app's URL
/// for HTTP scenarios, and the cell's identity.
pub struct CellEnv<'a> {
    /// The cell's server: the primary of a deployment (the first shard of a cluster).
    pub server: &'a mut dyn crate::server::RunningServer,
    /// The deployment's other nodes (replicas, Sentinels, shards); empty for one server.
    pub others: &'a mut [crate::server::Node],
    pub topology: crate::server::Topology,
    pub app_url: Option<String>,
    pub target: &'a crate::target::TargetSection,
    /// The cell's Django SESSION_ENGINE (Django's default, db, when not set).
    pub session_engine: String,
    /// Prefix for every key the cell writes.
    pub key_prefix: String,
    /// Prefix for every account the cell registers.
    pub user_tag: String,
    pub cancel: tokio_util::sync::CancellationToken,
    /// Operations done so far, for the progress display.
    pub progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The app's Django settings as sent, and its database: what a second app on another stack
    /// needs to serve the same users (bundled app only).
    pub app_settings: Option<serde_json::Value>,
    pub app_db: Option<std::path::PathBuf>,
    /// The cell's stack, "name (versions)".
    pub stack: Option<String>,
    /// The cell's provisioned stack itself.
    pub venv: Option<&'a crate::stack::ProvisionedStack>,
    /// The names of the cell's `[stacks]` and `[settings]` entries.
    pub stack_name: Option<String>,
    pub settings_name: Option<String>,
    /// The matrix's stacks by name.
    pub stacks: &'a std::collections::BTreeMap<String, crate::stack::StackSpec>,
    /// The matrix's settings tables by name, and the addresses their placeholders name.
    pub settings: &'a std::collections::BTreeMap<String, toml::Table>,
    pub addresses: crate::server::deployment::Addresses,
    /// Starts more servers on the cell's runtime (a rolling upgrade's new version); what a
    /// scenario starts with it, it removes.
    pub starter: &'a mut dyn crate::server::NodeStarter,
    /// The accounts created up front for a `login = "form"` target; empty when the flow
    /// registers its own.
    pub accounts: Vec<crate::target::protocol::Account>,
    /// The cell's log files without extension (`RUN/logs/NAME`), for scenarios that keep more
    /// logs than the runner does (`NAME.log`: the server, `NAME.app.log`: the app).
    pub log_base: std::path::PathBuf,
}

impl CellEnv<'_> {
    /// Who the login flow signs in as.
    pub fn users(&self) -> login_flow::Users<'_> {
        login_flow::Users {
            target: self.target,
            tag: &self.user_tag,
            accounts: &self.accounts,
        }
    }

    /// The `index`-th single user: one of the accounts made up front, in turn, or a user who
    /// registers as `name`.
    pub fn browser(
        &self,
        base: &str,
        index: usize,
        name: String,
        timeout: std::time::Duration,
    ) -> browser::Browser {
        match self.accounts.len() {
            0 => browser::Browser::new(base, self.target, name, timeout),
            n => browser::Browser::signing_in_as(
                base,
                self.target,
                self.accounts[index % n].clone(),
                timeout,
            ),
        }
    }
}

/// What a scenario measured, before it is wrapped into a `CellResult`.
#[derive(Debug, Clone, Default)]
pub struct ScenarioOutput {
    pub counts: OpCounts,
    pub ops: Vec<OpStats>,
    pub errors: Vec<ErrorCount>,
    pub timeline: Vec<TimelinePoint>,
    pub measured_seconds: f64,
    /// Did the scenario's own checks pass (before expectations are applied)?
    pub passed: bool,
    pub reason: String,
    /// HTTP responses by status code (HTTP scenarios).
    pub http_status: std::collections::BTreeMap<String, u64>,
    /// What a verification scenario found, against what was promised.
    pub check: Option<crate::results::checks::Check>,
    /// The scenario shut the cell's server down on purpose and left it so (a switch-over to
    /// another server): its being stopped at the end is not a crash.
    pub primary_stopped: bool,
    /// Set when the scenario could not run to a verdict (a server it needs could not be
    /// provisioned, say): the cell is an ERROR with this cause.
    pub infra_error: Option<String>,
}

impl ScenarioOutput {
    /// The output of a scenario that could not run, and why.
    pub fn infra(message: String) -> ScenarioOutput {
        ScenarioOutput {
            reason: message.clone(),
            infra_error: Some(message),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_name_and_reads_real_fields() {
        let params = serde_json::to_value(ScenarioParams::default()).unwrap();
        let real = params.as_object().unwrap();
        let mut names = std::collections::BTreeSet::new();
        for kind in KINDS {
            assert!(names.insert(kind.name), "{} registered twice", kind.name);
            for field in kind.fields {
                assert!(
                    real.contains_key(*field),
                    "{}: no field `{field}`",
                    kind.name
                );
            }
        }
    }

    #[test]
    fn resolving_names_unknown_kinds_and_refuses_other_kinds_fields() {
        let with = |kind: &str, users: Option<u32>| ScenarioParams {
            kind: Some(ScenarioKind::new(kind)),
            users,
            ..Default::default()
        };
        let err = ScenarioConfig::resolve(&with("bogus", None)).unwrap_err();
        assert!(err.contains("unknown scenario kind `bogus`"), "{err}");
        assert!(err.contains("cache-ops"), "{err}");
        assert_eq!(
            ScenarioConfig::resolve(&with("cache-ops", Some(3))).unwrap_err(),
            "field `users` does not apply to cache-ops"
        );
        let login = ScenarioConfig::resolve(&with("login-flow", Some(3))).unwrap();
        assert_eq!(format!("{:?}", login.kind()), "LoginFlow");
        assert!(login.needs_app());
        assert_eq!(login.info().ops, Some(login_flow::STEP_NAMES));
    }
}
