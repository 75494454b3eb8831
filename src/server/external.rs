//! `[target] server = "127.0.0.1:PORT"`: a cache server the harness did not start and must not
//! stop. Several generator hosts (`run --generator I/G`) load one such server together; a team
//! also points cachegate at the server its app already uses. Stopping, freezing or restarting it
//! is refused (that is its owner's to do), so only load scenarios run on it.

use std::net::SocketAddr;
use std::path::Path;

use super::runtime::{RunningServer, RuntimeIdentity, StopKind};
use super::spec::ServerSpec;
use crate::error::{Error, Result};

pub struct ExternalServer {
    spec: ServerSpec,
    addr: SocketAddr,
}

impl ExternalServer {
    /// A server already listening at `addr`: refused unless it answers (PONG, or memcached's
    /// `version`) with the cell's password.
    pub fn connect(spec: &ServerSpec, addr: SocketAddr) -> Result<ExternalServer> {
        if !super::control::ready(&spec.harness_endpoint(addr.port())) {
            return Err(Error::Server {
                server: spec.server.to_string(),
                message: format!(
                    "the external server at {addr} ([target] server) does not answer{}",
                    if spec.settings.requirepass.is_some() {
                        " (with the password of [server] requirepass)"
                    } else {
                        ""
                    }
                ),
            });
        }
        Ok(ExternalServer {
            spec: spec.clone(),
            addr,
        })
    }

    fn refuse(&self, what: &str) -> Error {
        Error::Server {
            server: self.spec.server.to_string(),
            message: format!(
                "cannot {what} the external server at {}: cachegate did not start it",
                self.addr
            ),
        }
    }
}

#[async_trait::async_trait]
impl RunningServer for ExternalServer {
    fn spec(&self) -> &ServerSpec {
        &self.spec
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn identity(&self) -> RuntimeIdentity {
        RuntimeIdentity {
            runtime: "external".into(),
            ..Default::default()
        }
    }

    fn last_start_ms(&self) -> f64 {
        0.0
    }

    async fn is_running(&mut self) -> bool {
        super::control::ready(&self.spec.harness_endpoint(self.addr.port()))
    }

    /// The cell ends by "stopping" its server: for an external one that is leaving it running.
    async fn stop(&mut self, how: StopKind) -> Result<()> {
        match how {
            StopKind::Graceful => Ok(()),
            _ => Err(self.refuse("stop")),
        }
    }

    async fn restart(&mut self, _new_spec: Option<ServerSpec>) -> Result<()> {
        Err(self.refuse("restart"))
    }

    async fn log_tail(&self, _n: usize) -> Vec<String> {
        vec![]
    }

    async fn save_log(&self, dest: &Path) -> std::io::Result<()> {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(
            dest,
            format!(
                "external server at {}: its log is its owner's, not in this run folder\n",
                self.addr
            ),
        )
    }

    async fn remove(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
