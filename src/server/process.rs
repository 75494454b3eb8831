//! The default runtime: a server as a local child process on a free 127.0.0.1 port, with a
//! generated config and a private data dir. Stopped by PID; killed on drop, so a panic or an
//! early return never leaves a server behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::control;
use super::provision::ProvisionedServer;
use super::runtime::{tail_lines, Endpoint, RunningServer, RuntimeIdentity, StopKind};
use super::spec::{Family, Protocol, ServerSpec};
use crate::child::ManagedChild;
use crate::error::{Error, Result};
use crate::net::free_server_port;

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

pub struct ServerProcess {
    spec: ServerSpec,
    binary: ProvisionedServer,
    /// Holds the config, the data dir and the log; removed on drop unless kept.
    workdir: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    port: u16,
    child: Option<ManagedChild>,
    /// Milliseconds from spawn to the first PONG, for the last start.
    pub last_start_ms: f64,
}

impl ServerProcess {
    /// Start a server in a fresh private temp dir.
    pub async fn start(spec: &ServerSpec, binary: &ProvisionedServer) -> Result<Self> {
        let tempdir = crate::scratch::temp_dir("server")
            .map_err(|e| Error::io("creating the server's temp dir", e))?;
        let mut server = ServerProcess {
            spec: spec.clone(),
            binary: binary.clone(),
            workdir: tempdir.path().to_path_buf(),
            _tempdir: Some(tempdir),
            port: 0,
            child: None,
            last_start_ms: 0.0,
        };
        std::fs::create_dir_all(server.data_dir())
            .map_err(|e| Error::io("creating the data dir", e))?;
        // The port is picked before the server binds it; another process may take it in between,
        // so a start that fails with "Address already in use" is retried on a new port.
        let mut last_err = None;
        for _ in 0..3 {
            server.port = free_server_port(server.spec.is_cluster_node())?;
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                Err(e) if server.log_text().contains("Address already in use") => {
                    last_err = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.expect("three attempts were made"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        self.spec.client_url(self.port)
    }

    /// Address, credentials and TLS, for the harness's own load connections.
    pub fn endpoint(&self) -> Endpoint {
        self.spec.harness_endpoint(self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(ManagedChild::pid)
    }

    pub fn spec(&self) -> &ServerSpec {
        &self.spec
    }

    pub fn data_dir(&self) -> PathBuf {
        self.workdir.join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.workdir.join("server.log")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `n` lines of the server log.
    pub fn log_tail(&self, n: usize) -> Vec<String> {
        tail_lines(&self.log_text(), n)
    }

    /// Is the process still running (not exited, not a zombie)?
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(ManagedChild::is_running)
    }

    fn fail(&self, message: String) -> Error {
        Error::Server {
            server: self.spec.server.to_string(),
            message,
        }
    }

    async fn spawn_and_wait(&mut self) -> Result<()> {
        let mut cmd = self.binary.command();
        if self.spec.server.family == Family::Memcached {
            // memcached refuses to run as root unless told which user to be.
            // SAFETY: geteuid has no preconditions.
            let as_root = unsafe { libc::geteuid() } == 0;
            cmd.args(self.spec.memcached_args("127.0.0.1", self.port, as_root));
        } else {
            let config_path = self.workdir.join("server.conf");
            // 0600: the config may hold `requirepass`.
            crate::scratch::write_private(
                &config_path,
                &self.spec.config_text(self.port, &self.data_dir()),
            )
            .map_err(|e| Error::io("writing the server config", e))?;
            cmd.arg(&config_path).args(self.spec.mode.args());
        }
        cmd.current_dir(self.data_dir());
        let started = Instant::now();
        let child = ManagedChild::spawn(cmd, &self.log_path())
            .map_err(|e| self.fail(format!("cannot run {}: {e}", self.binary.binary.display())))?;
        self.child = Some(child);
        self.wait_ready(started).await
    }

    /// Poll PING until the server answers PONG (not LOADING), or it exits, or time runs out.
    async fn wait_ready(&mut self, started: Instant) -> Result<()> {
        let endpoint = self.endpoint();
        loop {
            if !self.is_running() {
                let tail = self.log_tail(5).join(" | ");
                self.child = None;
                return Err(self.fail(format!("exited during start-up; log: {tail}")));
            }
            // Blocking (a TLS handshake included) but short: connect 200 ms, read 500 ms.
            if control::ready(&endpoint) {
                self.last_start_ms = started.elapsed().as_secs_f64() * 1000.0;
                tracing::debug!(
                    server = %self.spec.server,
                    port = self.port,
                    pid = self.pid(),
                    ms = %format_args!("{:.1}", self.last_start_ms),
                    "process ready"
                );
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                self.kill_now();
                return Err(self.fail(format!("did not answer PING within {READY_TIMEOUT:?}")));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Bring the server down the given way and wait until the process is gone.
    pub async fn stop(&mut self, how: StopKind) -> Result<()> {
        let endpoint = self.endpoint();
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        match how {
            StopKind::Graceful => child.signal(libc::SIGTERM),
            StopKind::Kill => child.signal(libc::SIGKILL),
            // memcached has no SHUTDOWN command (without -A) and nothing to save: SIGTERM.
            StopKind::NoSave | StopKind::Save if endpoint.protocol == Protocol::Memcache => {
                child.signal(libc::SIGTERM)
            }
            StopKind::NoSave | StopKind::Save => {
                control::shutdown(endpoint, how);
            }
        }
        let exited = child.wait_or_kill(STOP_TIMEOUT).await;
        self.child = None;
        if exited {
            Ok(())
        } else {
            Err(self.fail(format!(
                "did not exit within {STOP_TIMEOUT:?} of {how:?}; killed"
            )))
        }
    }

    /// Start again on the same port and data dir, optionally with a changed spec.
    pub async fn restart(&mut self, new_spec: Option<ServerSpec>) -> Result<()> {
        if self.is_running() {
            self.stop(StopKind::Graceful).await?;
        }
        if let Some(spec) = new_spec {
            self.spec = spec;
        }
        self.spawn_and_wait().await
    }

    /// Start `binary` as `spec` on the same port and data dir (an upgrade or downgrade in place).
    pub async fn restart_as(&mut self, spec: ServerSpec, binary: &ProvisionedServer) -> Result<()> {
        if self.is_running() {
            self.stop(StopKind::Graceful).await?;
        }
        self.binary = binary.clone();
        self.spec = spec;
        self.spawn_and_wait().await
    }

    /// Copy the server log somewhere that outlives the temp dir.
    pub fn save_log(&self, dest: &Path) -> std::io::Result<()> {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(self.log_path(), dest).map(|_| ())
    }

    fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill_now();
        }
    }
}

#[async_trait::async_trait]
impl RunningServer for ServerProcess {
    fn spec(&self) -> &ServerSpec {
        &self.spec
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn identity(&self) -> RuntimeIdentity {
        RuntimeIdentity {
            runtime: "process".into(),
            pid: self.pid(),
            ..Default::default()
        }
    }

    fn last_start_ms(&self) -> f64 {
        self.last_start_ms
    }

    async fn is_running(&mut self) -> bool {
        ServerProcess::is_running(self)
    }

    async fn freeze(&mut self, frozen: bool) -> Result<()> {
        match self.child.as_ref() {
            Some(child) => {
                child.signal(if frozen { libc::SIGSTOP } else { libc::SIGCONT });
                Ok(())
            }
            None => Err(Error::Server {
                server: self.spec.server.to_string(),
                message: "not running: nothing to pause".into(),
            }),
        }
    }

    async fn stop(&mut self, how: StopKind) -> Result<()> {
        ServerProcess::stop(self, how).await
    }

    async fn restart(&mut self, new_spec: Option<ServerSpec>) -> Result<()> {
        ServerProcess::restart(self, new_spec).await
    }

    fn can_switch_binary(&self) -> bool {
        true
    }

    async fn restart_as(&mut self, spec: ServerSpec, binary: &ProvisionedServer) -> Result<()> {
        ServerProcess::restart_as(self, spec, binary).await
    }

    async fn log_tail(&self, n: usize) -> Vec<String> {
        ServerProcess::log_tail(self, n)
    }

    async fn save_log(&self, dest: &Path) -> std::io::Result<()> {
        ServerProcess::save_log(self, dest)
    }

    async fn remove(mut self: Box<Self>) -> Result<()> {
        // The temp dir goes with `self`; the process is stopped first so nothing writes into it.
        ServerProcess::stop(&mut self, StopKind::Graceful).await
    }
}
