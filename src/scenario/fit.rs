//! What makes sense for which server family, checked when a matrix is expanded so that `check`
//! refuses a cell that could only fail for a reason that is not the server's: memcached has no
//! persistence modes, no SHUTDOWN SAVE/NOSAVE, no AUTH in its text protocol, no maxmemory
//! policies (it evicts at `-m` by LRU per slab class), and no replication, Sentinel or cluster
//! mode (a topology of nodes); durability and server-upgrade, which read the server over RESP or
//! its data files, do not run on it.

use crate::server::{Family, ServerSpec, Topology};

use super::promise::RestartKind;
use super::ScenarioConfig;

/// Why a cell does not fit its family: the matrix field to point at and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    /// `axes.persistence`, `server.requirepass`, `scenario.restart`, ...
    pub field: &'static str,
    pub message: String,
}

pub fn check(
    spec: &ServerSpec,
    topology: Topology,
    scenario: &ScenarioConfig,
) -> Result<(), Misfit> {
    if let ScenarioConfig::ServerUpgrade(c) = scenario {
        if c.to.family == Family::Memcached && spec.server.family != Family::Memcached {
            return Err(Misfit {
                field: "scenario.to",
                message: format!(
                    "{}: memcached cannot start on another server's data (it reads no files)",
                    spec.server
                ),
            });
        }
    }
    if let ScenarioConfig::RollingUpgrade(c) = scenario {
        if !matches!(c.to.family, Family::Redis | Family::Valkey) {
            return Err(Misfit {
                field: "scenario.to",
                message: format!(
                    "{}: rolling-upgrade replicates to a Redis or Valkey server",
                    c.to
                ),
            });
        }
    }
    if spec.server.family != Family::Memcached {
        return Ok(());
    }
    let server = spec.server.to_string();
    let misfit = |field: &'static str, why: String| {
        Err(Misfit {
            field,
            message: format!("{server}: {why}"),
        })
    };
    if spec.persistence.save_points.len() + usize::from(spec.persistence.aof.is_some()) > 0 {
        return misfit(
            "axes.persistence",
            format!(
                "memcached keeps everything in memory: persistence `{}` (RDB/AOF) does not \
                 apply; only `none` (leave memcached out with an [[exclude]])",
                spec.persistence
            ),
        );
    }
    if spec.settings.requirepass.is_some() {
        return misfit(
            "server.requirepass",
            "memcached's text protocol has no password (AUTH)".into(),
        );
    }
    if spec.settings.maxmemory_policy.is_some() {
        return misfit(
            "axes.policy",
            "memcached has no maxmemory policies (it evicts by LRU per slab class)".into(),
        );
    }
    // memcached servers do not know each other: clients shard keys across them, and nothing
    // replicates, fails over or owns slots, so every topology but one server would be made up.
    if !topology.is_standalone() {
        return misfit(
            "axes.topology",
            format!(
                "memcached has no replication, Sentinel or cluster mode (servers do not know \
                 each other; clients shard keys across them): topology `{topology}` needs Redis \
                 or Valkey; memcached runs `standalone` only (leave it out with an [[exclude]])"
            ),
        );
    }
    if matches!(
        scenario,
        ScenarioConfig::Durability(_)
            | ScenarioConfig::ServerUpgrade(_)
            | ScenarioConfig::RollingUpgrade(_)
    ) {
        return misfit(
            "scenario.kind",
            format!(
                "scenario kind `{}` is not supported on memcached (it reads the server over \
                 RESP and measures persistence or data files)",
                scenario.info().name
            ),
        );
    }
    if let ScenarioConfig::SessionPersistence(c) = scenario {
        if matches!(c.restart.restart, RestartKind::Nosave | RestartKind::Save) {
            return misfit(
                "scenario.restart",
                format!(
                    "restart `{}` is a Redis SHUTDOWN mode; memcached restarts `graceful` \
                     (SIGTERM) or `kill`",
                    format!("{:?}", c.restart.restart).to_lowercase()
                ),
            );
        }
        if c.restart.restart_persistence.is_some() {
            return misfit(
                "scenario.restart_persistence",
                "memcached has no persistence config to restart with".into(),
            );
        }
    }
    Ok(())
}
