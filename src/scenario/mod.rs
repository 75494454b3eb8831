//! Scenarios: what load or verification a cell runs. Each kind resolves its parameters from
//! `ScenarioParams` and produces a `ScenarioOutput` in the shared results model.

pub mod browser;
pub mod cache_ops;
pub mod durability;
pub mod eviction;
pub mod login_flow;
pub mod outage;
pub mod promise;
pub mod resp;
pub mod session_persistence;
pub mod workload;

use serde::Serialize;

use crate::config::{ScenarioKind, ScenarioParams};
use crate::results::{ErrorCount, OpCounts, OpStats, TimelinePoint};

/// A scenario with all parameters resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ScenarioConfig {
    CacheOps(cache_ops::CacheOpsConfig),
    LoginFlow(login_flow::LoginFlowConfig),
    SessionPersistence(session_persistence::SessionPersistenceConfig),
    Durability(durability::DurabilityConfig),
    Outage(outage::OutageConfig),
    Eviction(eviction::EvictionConfig),
}

impl ScenarioConfig {
    pub fn resolve(p: &ScenarioParams) -> Result<Self, String> {
        if let Some(kind) = p.kind {
            p.check_applicable(kind)?;
        }
        match p.kind {
            Some(ScenarioKind::LoginFlow) => {
                login_flow::LoginFlowConfig::resolve(p).map(ScenarioConfig::LoginFlow)
            }
            Some(ScenarioKind::CacheOps) => {
                cache_ops::CacheOpsConfig::resolve(p).map(ScenarioConfig::CacheOps)
            }
            Some(ScenarioKind::SessionPersistence) => {
                session_persistence::SessionPersistenceConfig::resolve(p)
                    .map(ScenarioConfig::SessionPersistence)
            }
            Some(ScenarioKind::Durability) => {
                durability::DurabilityConfig::resolve(p).map(ScenarioConfig::Durability)
            }
            Some(ScenarioKind::Outage) => {
                outage::OutageConfig::resolve(p).map(ScenarioConfig::Outage)
            }
            Some(ScenarioKind::Eviction) => {
                eviction::EvictionConfig::resolve(p).map(ScenarioConfig::Eviction)
            }
            None => Err("field `kind` missing".into()),
        }
    }

    pub fn kind(&self) -> ScenarioKind {
        match self {
            ScenarioConfig::CacheOps(_) => ScenarioKind::CacheOps,
            ScenarioConfig::LoginFlow(_) => ScenarioKind::LoginFlow,
            ScenarioConfig::SessionPersistence(_) => ScenarioKind::SessionPersistence,
            ScenarioConfig::Durability(_) => ScenarioKind::Durability,
            ScenarioConfig::Outage(_) => ScenarioKind::Outage,
            ScenarioConfig::Eviction(_) => ScenarioKind::Eviction,
        }
    }

    /// Does this scenario talk to a web app (bundled or external)?
    pub fn needs_app(&self) -> bool {
        !matches!(
            self,
            ScenarioConfig::CacheOps(_) | ScenarioConfig::Durability(_)
        )
    }

    /// Seconds the scenario is planned to take, for the progress bar (0: unknown).
    pub fn planned_seconds(&self) -> u64 {
        match self {
            ScenarioConfig::CacheOps(c) => match c.length {
                cache_ops::RunLength::Duration(d) => (d.0 + c.warmup.0).as_secs(),
                cache_ops::RunLength::Ops(_) => 0,
            },
            ScenarioConfig::LoginFlow(c) => match c.length {
                login_flow::FlowLength::Duration(d) => d.0.as_secs(),
                login_flow::FlowLength::Iterations(_) => 0,
            },
            ScenarioConfig::Outage(c) => match c.flow.length {
                login_flow::FlowLength::Duration(d) => d.0.as_secs(),
                login_flow::FlowLength::Iterations(_) => 0,
            },
            ScenarioConfig::Durability(c) => c.duration.0.as_secs(),
            ScenarioConfig::Eviction(c) => match c.fill.length {
                cache_ops::RunLength::Duration(d) => d.0.as_secs(),
                cache_ops::RunLength::Ops(_) => 0,
            },
            ScenarioConfig::SessionPersistence(_) => 0,
        }
    }

    /// Connections the scenario opens to the server at once, for the file-descriptor check.
    pub fn connections(&self) -> u64 {
        match self {
            ScenarioConfig::CacheOps(c) => c.connections as u64,
            ScenarioConfig::Eviction(c) => c.fill.connections as u64,
            _ => 0,
        }
    }

    /// Run against a cell's server (and app).
    pub async fn run(&self, env: &mut CellEnv<'_>) -> ScenarioOutput {
        match self {
            ScenarioConfig::CacheOps(cfg) => {
                let endpoint = env.server.endpoint();
                cache_ops::run(
                    cfg,
                    &endpoint,
                    &env.key_prefix,
                    env.cancel.clone(),
                    env.progress.clone(),
                )
                .await
            }
            ScenarioConfig::LoginFlow(cfg) => {
                let base = env.app_url.clone().expect("HTTP scenarios get an app");
                login_flow::run(
                    cfg,
                    &base,
                    env.target,
                    &env.user_tag,
                    env.cancel.clone(),
                    env.progress.clone(),
                )
                .await
            }
            ScenarioConfig::SessionPersistence(cfg) => session_persistence::run(cfg, env).await,
            ScenarioConfig::Durability(cfg) => durability::run(cfg, env).await,
            ScenarioConfig::Outage(cfg) => outage::run(cfg, env).await,
            ScenarioConfig::Eviction(cfg) => eviction::run(cfg, env).await,
        }
    }
}

/// What a scenario works with: the cell's server (which it may stop and restart), the app's URL
/// for HTTP scenarios, and the cell's identity.
pub struct CellEnv<'a> {
    pub server: &'a mut dyn crate::server::RunningServer,
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
    pub persistence: Option<crate::results::checks::PersistenceCheck>,
    pub outage: Option<crate::results::checks::OutageReport>,
    pub eviction: Option<crate::results::checks::EvictionReport>,
}
