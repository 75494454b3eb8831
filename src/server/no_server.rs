//! The server axis value `none`: a cell without a cache server, so the bundled app runs on a
//! session engine that needs none (Django's `db` or `file`) as a baseline beside the cache cells.
//! Stopping and restarting it does nothing, which is exactly the point: a session-persistence or
//! outage cell then shows what such an engine keeps when there is no cache to lose.

use std::path::Path;

use super::runtime::{RunningServer, RuntimeIdentity, StopKind};
use super::spec::ServerSpec;
use crate::error::Result;

pub struct NoServer {
    spec: ServerSpec,
}

/// What the cell's log file says instead of a server log.
const LOG_NOTE: &str = "no cache server: this cell ran the app alone (server axis value `none`)\n";

impl NoServer {
    pub fn new(spec: &ServerSpec) -> Self {
        NoServer { spec: spec.clone() }
    }
}

#[async_trait::async_trait]
impl RunningServer for NoServer {
    fn spec(&self) -> &ServerSpec {
        &self.spec
    }

    fn port(&self) -> u16 {
        0
    }

    fn identity(&self) -> RuntimeIdentity {
        RuntimeIdentity {
            runtime: "none".into(),
            ..Default::default()
        }
    }

    fn last_start_ms(&self) -> f64 {
        0.0
    }

    /// Nothing to connect to: a `{server}` placeholder in the settings becomes empty (and the
    /// check of the matrix refuses cache settings on such cells).
    fn url(&self) -> String {
        String::new()
    }

    async fn is_running(&mut self) -> bool {
        true
    }

    async fn stop(&mut self, _how: StopKind) -> Result<()> {
        Ok(())
    }

    async fn restart(&mut self, new_spec: Option<ServerSpec>) -> Result<()> {
        if let Some(spec) = new_spec {
            self.spec = spec;
        }
        Ok(())
    }

    async fn log_tail(&self, _n: usize) -> Vec<String> {
        vec![]
    }

    async fn save_log(&self, dest: &Path) -> std::io::Result<()> {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(dest, LOG_NOTE)
    }

    async fn remove(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
