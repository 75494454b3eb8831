//! The runtime seam: what a scenario needs from a running server, whichever way it runs: a local
//! process (`process.rs`, the default) or a container (`container.rs`). Scenarios hold a
//! `Box<dyn RunningServer>` and never learn which one they got, so every scenario kind runs
//! unchanged on both. A deployment of several servers (replicas, sentinels, cluster nodes) is a
//! set of these, one per node.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::provision::ProvisionedServer;
use super::spec::{Protocol, ServerSpec};
use crate::error::Result;
pub use crate::results::ran::RuntimeIdentity;

/// How a running server is brought down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopKind {
    /// SIGTERM (`docker stop` for containers): like SHUTDOWN, saves an RDB if save points are
    /// configured, flushes the AOF.
    Graceful,
    /// `SHUTDOWN NOSAVE`: exits without writing a snapshot.
    NoSave,
    /// `SHUTDOWN SAVE`: writes a snapshot even when no save points are configured.
    Save,
    /// SIGKILL: no chance to write anything.
    Kill,
}

/// Where a server listens and how to authenticate. Always a 127.0.0.1 address: the harness
/// sends traffic nowhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// An ACL user (`AUTH user password`); `None` authenticates as `default`.
    pub user: Option<String>,
    pub password: Option<String>,
    pub protocol: Protocol,
    /// TLS on the `tls` transport: the cell's CA (and client certificate).
    pub tls: Option<std::sync::Arc<super::tls::TlsMaterial>>,
}

impl Endpoint {
    /// A plaintext endpoint at `addr` with an optional `requirepass` password.
    pub fn plain(addr: SocketAddr, password: Option<&str>, protocol: Protocol) -> Endpoint {
        Endpoint {
            addr,
            user: None,
            password: password.map(str::to_string),
            protocol,
            tls: None,
        }
    }

    /// The `AUTH` command's arguments, when there is a password.
    pub fn auth_args(&self) -> Option<Vec<&str>> {
        let pw = self.password.as_deref()?;
        Some(match &self.user {
            Some(user) => vec!["AUTH", user, pw],
            None => vec!["AUTH", pw],
        })
    }
}

/// A started server, as scenarios and the cell runner see it. The port stays the same across
/// restarts (the app's settings are written once from the first address).
#[async_trait::async_trait]
pub trait RunningServer: Send {
    fn spec(&self) -> &ServerSpec;

    /// The 127.0.0.1 port the harness and the app connect to.
    fn port(&self) -> u16;

    /// Who runs it (PID, container, image), for the report.
    fn identity(&self) -> RuntimeIdentity;

    /// Milliseconds from the last start to the first PONG.
    fn last_start_ms(&self) -> f64;

    /// The server's URL for clients, with the password if one is set.
    fn url(&self) -> String {
        self.spec().client_url(self.port())
    }

    /// Address, credentials and TLS, for the harness's own connections.
    fn endpoint(&self) -> Endpoint {
        self.spec().harness_endpoint(self.port())
    }

    /// Is the server still running (not exited)?
    async fn is_running(&mut self) -> bool;

    /// Bring the server down the given way and wait until it is gone.
    async fn stop(&mut self, how: StopKind) -> Result<()>;

    /// Freeze the server (`true`: SIGSTOP, `docker pause`) or let it run on (`false`). Frozen,
    /// it keeps its connections and its data and answers nothing, like a stalled VM or a long
    /// pause of the host; its replicas keep serving what they had.
    async fn freeze(&mut self, frozen: bool) -> Result<()> {
        let _ = frozen;
        Err(crate::error::Error::Server {
            server: self.spec().server.to_string(),
            message: format!(
                "the {} runtime cannot pause a server",
                self.identity().runtime
            ),
        })
    }

    /// Start again on the same port and data, optionally with a changed spec (another
    /// persistence config, say). Stops it gracefully first if it is still running.
    async fn restart(&mut self, new_spec: Option<ServerSpec>) -> Result<()>;

    /// Can `restart_as` start another server binary on this server's data?
    fn can_switch_binary(&self) -> bool {
        false
    }

    /// Start another server (`binary`, a different version or family, run as `spec`) on the
    /// same port and data: an upgrade or a downgrade in place. Stops this one gracefully first if
    /// it is still running. Only where `can_switch_binary` says so.
    async fn restart_as(&mut self, spec: ServerSpec, binary: &ProvisionedServer) -> Result<()> {
        let _ = (spec, binary);
        Err(crate::error::Error::Server {
            server: self.spec().server.to_string(),
            message: format!(
                "the {} runtime cannot start another binary on this data",
                self.identity().runtime
            ),
        })
    }

    /// The last `n` lines of the server's log.
    async fn log_tail(&self, n: usize) -> Vec<String>;

    /// Write the whole server log to `dest` (in the run folder).
    async fn save_log(&self, dest: &Path) -> std::io::Result<()>;

    /// Stop the server and remove everything its runtime created (temp dirs, containers,
    /// volumes). Dropping does the same, best-effort; this reports what went wrong.
    async fn remove(self: Box<Self>) -> Result<()>;
}

/// The last `n` lines of a log text.
pub fn tail_lines(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
