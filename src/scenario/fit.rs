//! What makes sense for which server family, checked when a matrix is expanded so that `check`
//! refuses a cell that could only fail for a reason that is not the server's: memcached has no
//! persistence modes, no SHUTDOWN SAVE/NOSAVE, no AUTH in its text protocol, no maxmemory
//! policies (it evicts at `-m` by LRU per slab class), and no replication, Sentinel or cluster
//! mode (a topology of nodes); durability and server-upgrade, which read the server over RESP or
//! its data files, do not run on it.

use crate::config::matrix_file::RuntimeKind;
use crate::server::tls::Transport;
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

/// What the `tls` transport and ACL users need: a Redis or Valkey server of one node started by
/// the process runtime, and (for TLS) a scenario whose harness connections all speak TLS. ACL
/// users need Redis 6 or later. A cache-ops `acl_user` must be one of `[[server.users]]`.
pub fn check_auth(
    spec: &ServerSpec,
    topology: Topology,
    transport: Transport,
    runtime: RuntimeKind,
    scenario: &ScenarioConfig,
    external: bool,
) -> Result<(), Misfit> {
    let server = spec.server.to_string();
    let misfit = |field: &'static str, why: String| {
        Err(Misfit {
            field,
            message: format!("{server}: {why}"),
        })
    };
    let users = &spec.settings.users;
    if let Some(problem) = users.iter().find_map(|u| u.problem()) {
        return misfit("server.users", problem);
    }
    if let ScenarioConfig::CacheOps(c) = scenario {
        if let Some(name) = &c.acl_user {
            if !users.iter().any(|u| &u.name == name) {
                return misfit(
                    "scenario.acl_user",
                    format!("acl_user `{name}` is not one of [[server.users]]"),
                );
            }
        }
    }
    let real = matches!(spec.server.family, Family::Redis | Family::Valkey);
    if !users.is_empty() {
        if !real {
            return misfit(
                "server.users",
                "ACL users need a Redis or Valkey server".into(),
            );
        }
        if spec.server.family == Family::Redis && spec.server.version.first() < Some(&6) {
            return misfit("server.users", "ACL users need Redis 6 or later".into());
        }
        if !topology.is_standalone() {
            return misfit(
                "server.users",
                format!(
                    "ACL users with topology `{topology}` are not supported yet (replicas and \
                     Sentinels would need the harness's user too); use `standalone`"
                ),
            );
        }
        if external {
            return misfit(
                "server.users",
                "ACL users are written into the config of a server cachegate starts; an \
                 external [target] server has its own"
                    .into(),
            );
        }
    }
    if transport.is_plaintext() {
        return Ok(());
    }
    let why = if !real {
        Some("the tls transport needs a Redis or Valkey server".to_string())
    } else if !topology.is_standalone() {
        Some(format!(
            "the tls transport with topology `{topology}` is not supported yet (standalone only)"
        ))
    } else if runtime != RuntimeKind::Process {
        Some("the tls transport runs on the process runtime only (not yet in containers)".into())
    } else if external {
        Some("the tls transport makes its own certificates for a server cachegate starts".into())
    } else if !matches!(
        scenario,
        ScenarioConfig::CacheOps(_)
            | ScenarioConfig::LoginFlow(_)
            | ScenarioConfig::SessionPersistence(_)
    ) {
        Some(format!(
            "scenario kind `{}` does not run over TLS yet (cache-ops, login-flow and \
             session-persistence do)",
            scenario.info().name
        ))
    } else {
        None
    };
    match why {
        Some(why) => misfit("axes.transport", why),
        None => Ok(()),
    }
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
