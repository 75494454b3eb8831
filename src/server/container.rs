//! The container runtime: a server in a container on the local Docker engine, through
//! testcontainers (0.28: the newest release; 0.27.3 works the same here and is only needed by
//! testcontainers-modules, whose Redis module adds nothing over `GenericImage`).
//!
//! - Data lives on a named volume created per cell, so a graceful stop and start, a `docker kill`
//!   and start, and a new container on the same volume (a changed config) keep or lose data
//!   exactly as the persistence mode promises. The container layer would cost ~25-35 % of SET
//!   throughput with `appendfsync always` (fuse-overlayfs) and tmpfs would lose data.
//! - The config file is copied in (mode 0600), so a password never appears in the container's
//!   command line or in `docker inspect`.
//! - Network: `host` (default) binds the server to 127.0.0.1 on a port chosen here, so container
//!   and process cells measure the server and not docker-proxy (measured 37.7k GET/s published
//!   vs 90.0k host vs 89.7k process with redis-benchmark); `bridge` puts the server on a private
//!   network the harness creates and publishes its port on 127.0.0.1 only, at a host port chosen
//!   here so it stays the same across restarts (the app's settings are written once).
//! - The Ryuk reaper cannot be pulled here: everything created carries the harness's labels
//!   (`cachegate.run`, `cachegate.cell`, `cachegate.harness` = pid:start-time), is removed when
//!   the cell ends (and on drop: errors, panics), and leftovers of a harness that is gone are
//!   swept at the next run's start (`sweep_leftovers`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use testcontainers::bollard::models::{NetworkCreateRequest, PortBinding, VolumeCreateRequest};
use testcontainers::bollard::query_parameters::{
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};
use testcontainers::bollard::Docker;
use testcontainers::core::{IntoContainerPort, Mount};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, CopyTargetOptions, GenericImage, ImageExt};

use super::control;
use super::image::{self, ImageRef, CONFIG_PATH};
use super::provision::ProvisionedServer;
use super::runtime::{tail_lines, RunningServer, RuntimeIdentity, StopKind};
use super::spec::{Family, ServerSpec};
use crate::error::{Error, Result};
use crate::net::free_server_port;
use crate::scratch::{owner_alive, owner_id};

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// The port the server listens on inside its own network namespace (bridge).
const CONTAINER_PORT: u16 = 6379;

/// Label keys on everything the container runtime creates.
pub const OWNER_LABEL: &str = "cachegate.owner";
pub const RUN_LABEL: &str = "cachegate.run";
pub const CELL_LABEL: &str = "cachegate.cell";
pub const HARNESS_LABEL: &str = "cachegate.harness";

/// How the harness reaches a containerized server.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NetworkPath {
    /// The host's network: the server binds 127.0.0.1 directly (compares with processes).
    #[default]
    Host,
    /// A private bridge network, the port published on 127.0.0.1 through docker-proxy.
    Bridge,
}

impl NetworkPath {
    pub fn name(self) -> &'static str {
        match self {
            NetworkPath::Host => "host",
            NetworkPath::Bridge => "bridge",
        }
    }
}

/// `[runtime.container]` in a matrix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerOptions {
    #[serde(default)]
    pub network: NetworkPath,
    /// Images to use instead of cachegate's own, by server request:
    /// `images."redis@7.4" = "redis:7.4.1"` (must exist locally or be pullable).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
    /// Memory limit, e.g. "512m" or "2g".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// CPU limit in cores, e.g. 1.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Pull an override image that is not in the local engine (off: nothing is fetched from a
    /// registry unless asked, and a missing tag is an error at once).
    #[serde(default)]
    pub pull: bool,
}

impl ContainerOptions {
    /// Check the limits parse; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some(m) = &self.memory {
            parse_memory(m)?;
        }
        if let Some(c) = self.cpus {
            if !(c > 0.0 && c <= 1024.0) {
                return Err(format!(
                    "runtime.container.cpus = {c}: needs a number of cores above 0"
                ));
            }
        }
        Ok(())
    }
}

/// "512m", "2g", "1048576" → bytes.
fn parse_memory(s: &str) -> std::result::Result<i64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let (digits, unit) = match lower.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => lower.split_at(i),
        None => (lower.as_str(), ""),
    };
    let n: i64 = digits.parse().map_err(|_| {
        format!("runtime.container.memory = {s:?}: expected e.g. \"512m\" or \"2g\"")
    })?;
    let factor = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => {
            return Err(format!(
                "runtime.container.memory = {s:?}: unit must be k, m or g"
            ))
        }
    };
    n.checked_mul(factor)
        .filter(|b| *b >= 6 << 20)
        .ok_or_else(|| format!("runtime.container.memory = {s:?}: Docker needs at least 6m"))
}

/// The labels that tie what a cell created to the run and the harness process that owns it.
#[derive(Debug, Clone)]
pub struct ContainerLabels {
    pub run: String,
    pub cell: String,
    pub harness: String,
}

impl ContainerLabels {
    pub fn new(run: &str, cell: &str) -> Self {
        ContainerLabels {
            run: run.to_string(),
            cell: cell.to_string(),
            harness: owner_id(std::process::id()).unwrap_or_default(),
        }
    }

    fn map(&self) -> HashMap<String, String> {
        HashMap::from([
            (OWNER_LABEL.to_string(), "cachegate".to_string()),
            (RUN_LABEL.to_string(), self.run.clone()),
            (CELL_LABEL.to_string(), self.cell.clone()),
            (HARNESS_LABEL.to_string(), self.harness.clone()),
        ])
    }

    /// A short, unique, Docker-safe name for this cell's volume or network.
    fn name(&self, what: &str) -> String {
        let cell: String = self
            .cell
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let unique: u32 = rand::random();
        format!("cachegate-{what}-{cell}-{unique:08x}")
    }
}

/// Connect to the engine (DOCKER_HOST or the local socket) and check it answers.
pub async fn connect() -> Result<Docker> {
    let where_ =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let unreachable = |e: String| Error::Server {
        server: "docker".into(),
        message: format!(
            "no Docker engine reachable at {where_} ({e}); container cells need one, \
             `runtime = \"process\"` works without Docker"
        ),
    };
    let docker = Docker::connect_with_defaults().map_err(|e| unreachable(e.to_string()))?;
    match tokio::time::timeout(Duration::from_secs(5), docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable("no answer within 5 s".into())),
    }
}

pub struct ContainerServer {
    docker: Docker,
    spec: ServerSpec,
    options: ContainerOptions,
    labels: ContainerLabels,
    image: ImageRef,
    /// Named volume on /data: outlives each container, removed with the server.
    volume: String,
    /// Private network (bridge only).
    network: Option<String>,
    /// The 127.0.0.1 port the harness connects to; the same for every container of this server.
    port: u16,
    container: Option<ContainerAsync<GenericImage>>,
    /// Logs of containers already removed (a config change replaces the container).
    earlier_logs: String,
    last_start_ms: f64,
    removed: bool,
}

impl ContainerServer {
    pub async fn start(
        spec: &ServerSpec,
        binary: &ProvisionedServer,
        options: &ContainerOptions,
        labels: ContainerLabels,
    ) -> Result<Self> {
        let fail = |message: String| Error::Server {
            server: spec.server.to_string(),
            message,
        };
        options.validate().map_err(&fail)?;
        let docker = connect().await?;
        let image = image::resolve(&docker, binary, &options.images, options.pull)
            .await
            .map_err(&fail)?;
        let volume = labels.name("data");
        docker
            .create_volume(VolumeCreateRequest {
                name: Some(volume.clone()),
                labels: Some(labels.map()),
                ..Default::default()
            })
            .await
            .map_err(|e| fail(format!("creating volume {volume}: {e}")))?;
        let mut server = ContainerServer {
            docker,
            spec: spec.clone(),
            options: options.clone(),
            labels,
            image,
            volume,
            network: None,
            port: 0,
            container: None,
            earlier_logs: String::new(),
            last_start_ms: 0.0,
            removed: false,
        };
        if options.network == NetworkPath::Bridge {
            let name = server.labels.name("net");
            server
                .docker
                .create_network(NetworkCreateRequest {
                    name: name.clone(),
                    labels: Some(server.labels.map()),
                    ..Default::default()
                })
                .await
                .map_err(|e| fail(format!("creating network {name}: {e}")))?;
            server.network = Some(name);
        }
        // As for processes: the port is picked before the server binds it, so a start that
        // loses the race is retried on a new port.
        let mut last_err = None;
        for _ in 0..3 {
            server.port = free_server_port(server.spec.is_cluster_node())?;
            match server.create_and_start().await {
                Ok(()) => return Ok(server),
                Err(e) if e.to_string().contains("Address already in use") => {
                    server.retire_container().await;
                    last_err = Some(e)
                }
                Err(e) => {
                    server.cleanup().await;
                    return Err(e);
                }
            }
        }
        server.cleanup().await;
        Err(last_err.expect("three attempts were made"))
    }

    fn fail(&self, message: String) -> Error {
        Error::Server {
            server: self.spec.server.to_string(),
            message,
        }
    }

    /// The config as the server reads it inside the container: data in /data, listening on
    /// 127.0.0.1:port (host network) or on the container's own interface (bridge).
    fn config_text(&self) -> String {
        match self.options.network {
            NetworkPath::Host => self.spec.config_text(self.port, Path::new("/data")),
            // The container's own interface: reached through docker-proxy from the bridge
            // gateway, which protected mode would refuse without a password. The port is
            // published on 127.0.0.1 only and the network is the cell's own.
            NetworkPath::Bridge => {
                self.spec
                    .config_text_bound("0.0.0.0", CONTAINER_PORT, Path::new("/data"))
                    + "protected-mode no\n"
            }
        }
    }

    async fn create_and_start(&mut self) -> Result<()> {
        let (repo, tag) = self
            .image
            .tag
            .rsplit_once(':')
            .unwrap_or((self.image.tag.as_str(), "latest"));
        let image = GenericImage::new(repo, tag);
        let mut request = if self.spec.server.family == Family::Memcached {
            // memcached has no config file, only a command line. It refuses to run as root
            // without `-u root`, which needs a user database the image does not have: run it as
            // nobody (a numeric id needs no /etc/passwd). It writes nothing, so /data is unused.
            let (bind, port) = match self.options.network {
                NetworkPath::Host => ("127.0.0.1", self.port),
                NetworkPath::Bridge => ("0.0.0.0", CONTAINER_PORT),
            };
            image
                .with_cmd(self.spec.memcached_args(bind, port, false))
                .with_user("65534:65534")
        } else {
            image
                .with_cmd(std::iter::once(CONFIG_PATH).chain(self.spec.mode.args().iter().copied()))
                .with_copy_to(
                    CopyTargetOptions::new(CONFIG_PATH).with_mode(0o600),
                    self.config_text().into_bytes(),
                )
        };
        request = request
            .with_mount(Mount::volume_mount(self.volume.clone(), "/data"))
            .with_labels(self.labels.map())
            .with_startup_timeout(READY_TIMEOUT);
        let memory = self.options.memory.as_deref().map(parse_memory).transpose();
        let memory = memory.map_err(|e| self.fail(e))?;
        let nano_cpus = self.options.cpus.map(|c| (c * 1e9) as i64);
        let publish = match &self.network {
            Some(net) => {
                request = request
                    .with_network(net.clone())
                    .with_mapped_port(self.port, CONTAINER_PORT.tcp());
                Some(self.port)
            }
            None => {
                request = request.with_network("host");
                None
            }
        };
        let request = request.with_host_config_modifier(move |hc| {
            hc.memory = memory;
            hc.nano_cpus = nano_cpus;
            // Published ports listen on 127.0.0.1 only (Docker's default is every interface).
            if let Some(port) = publish {
                hc.port_bindings = Some(HashMap::from([(
                    format!("{CONTAINER_PORT}/tcp"),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(port.to_string()),
                    }]),
                )]));
            }
        });
        let started = Instant::now();
        let container = request
            .start()
            .await
            .map_err(|e| self.fail(format!("starting a container from {}: {e}", self.image.tag)))?;
        self.container = Some(container);
        self.wait_ready(started).await
    }

    /// Poll PING until PONG (memcached: `version`), or the container exits, or time runs out.
    /// (testcontainers' log wait does not fire again after a restart: the old "Ready" line is
    /// still in the log.)
    async fn wait_ready(&mut self, started: Instant) -> Result<()> {
        let endpoint = self.endpoint();
        let mut last_check = Instant::now();
        loop {
            let probe = endpoint.clone();
            let pong = tokio::task::spawn_blocking(move || control::ready(&probe))
                .await
                .unwrap_or(false);
            if pong {
                self.last_start_ms = started.elapsed().as_secs_f64() * 1000.0;
                tracing::debug!(
                    server = %self.spec.server,
                    port = self.port,
                    image = %self.image.tag,
                    ms = %format_args!("{:.1}", self.last_start_ms),
                    "container ready"
                );
                return Ok(());
            }
            // Asking the engine costs a round trip: check for an early exit every 100 ms.
            if last_check.elapsed() > Duration::from_millis(100) {
                last_check = Instant::now();
                if !self.container_running().await {
                    let tail = tail_lines(&self.current_logs().await, 5).join(" | ");
                    return Err(self.fail(format!("exited during start-up; log: {tail}")));
                }
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(self.fail(format!("did not answer PING within {READY_TIMEOUT:?}")));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn container_running(&self) -> bool {
        match &self.container {
            Some(c) => c.is_running().await.unwrap_or(false),
            None => false,
        }
    }

    /// Wait until the container has exited.
    async fn wait_exited(&self) -> bool {
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !self.container_running().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// stdout and stderr of the current container, in order.
    async fn current_logs(&self) -> String {
        let Some(c) = &self.container else {
            return String::new();
        };
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let mut stream = self.docker.logs(c.id(), Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        text
    }

    async fn log_text(&self) -> String {
        format!("{}{}", self.earlier_logs, self.current_logs().await)
    }

    /// Keep the current container's log, then remove it (the volume stays).
    async fn retire_container(&mut self) {
        if self.container.is_none() {
            return;
        }
        let logs = self.current_logs().await;
        self.earlier_logs.push_str(&logs);
        if let Some(c) = self.container.take() {
            let _ = c.rm().await;
        }
    }

    /// Remove the container, the volume and the network; returns what could not be removed.
    async fn cleanup(&mut self) -> Vec<String> {
        let mut problems = vec![];
        if let Some(c) = self.container.take() {
            let id = c.id().to_string();
            if let Err(e) = c.rm().await {
                problems.push(format!("container {id}: {e}"));
            }
        }
        let force = RemoveVolumeOptionsBuilder::default().force(true).build();
        if let Err(e) = self.docker.remove_volume(&self.volume, Some(force)).await {
            problems.push(format!("volume {}: {e}", self.volume));
        }
        if let Some(net) = self.network.take() {
            if let Err(e) = self.docker.remove_network(&net).await {
                problems.push(format!("network {net}: {e}"));
            }
        }
        self.removed = true;
        problems
    }
}

#[async_trait::async_trait]
impl RunningServer for ContainerServer {
    fn spec(&self) -> &ServerSpec {
        &self.spec
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn identity(&self) -> RuntimeIdentity {
        RuntimeIdentity {
            runtime: "container".into(),
            container: self
                .container
                .as_ref()
                .map(|c| c.id().chars().take(12).collect()),
            image: Some(self.image.tag.clone()),
            image_id: Some(self.image.id.clone()),
            network: Some(self.options.network.name().to_string()),
            ..Default::default()
        }
    }

    fn last_start_ms(&self) -> f64 {
        self.last_start_ms
    }

    async fn is_running(&mut self) -> bool {
        self.container_running().await
    }

    async fn freeze(&mut self, frozen: bool) -> Result<()> {
        let Some(c) = &self.container else {
            return Err(self.fail("no container to pause".into()));
        };
        let done = if frozen {
            self.docker.pause_container(c.id()).await
        } else {
            self.docker.unpause_container(c.id()).await
        };
        done.map_err(|e| self.fail(format!("docker (un)pause: {e}")))
    }

    async fn stop(&mut self, how: StopKind) -> Result<()> {
        let Some(c) = &self.container else {
            return Ok(());
        };
        if !self.container_running().await {
            return Ok(());
        }
        // memcached has no SHUTDOWN command (without -A) and nothing to save: SIGTERM.
        let how = match how {
            StopKind::NoSave | StopKind::Save if self.spec.server.family == Family::Memcached => {
                StopKind::Graceful
            }
            how => how,
        };
        match how {
            // `docker stop`: SIGTERM, then SIGKILL after the timeout.
            StopKind::Graceful => c
                .stop_with_timeout(Some(STOP_TIMEOUT.as_secs() as i32))
                .await
                .map_err(|e| self.fail(format!("docker stop: {e}")))?,
            StopKind::Kill => {
                let kill = KillContainerOptionsBuilder::default()
                    .signal("SIGKILL")
                    .build();
                self.docker
                    .kill_container(c.id(), Some(kill))
                    .await
                    .map_err(|e| self.fail(format!("docker kill: {e}")))?
            }
            StopKind::NoSave | StopKind::Save => {
                let endpoint = self.endpoint();
                tokio::task::spawn_blocking(move || control::shutdown(endpoint, how))
                    .await
                    .ok();
            }
        }
        if self.wait_exited().await {
            Ok(())
        } else {
            let kill = KillContainerOptionsBuilder::default()
                .signal("SIGKILL")
                .build();
            let _ = self.docker.kill_container(c.id(), Some(kill)).await;
            Err(self.fail(format!(
                "did not exit within {STOP_TIMEOUT:?} of {how:?}; killed"
            )))
        }
    }

    async fn restart(&mut self, new_spec: Option<ServerSpec>) -> Result<()> {
        if self.container_running().await {
            RunningServer::stop(self, StopKind::Graceful).await?;
        }
        let started = Instant::now();
        match new_spec {
            // The same container again: what an orchestrator's restart does.
            None if self.container.is_some() => {
                let c = self.container.as_ref().expect("checked");
                c.start()
                    .await
                    .map_err(|e| self.fail(format!("docker start: {e}")))?;
                self.wait_ready(started).await
            }
            // A changed config is a new container on the same volume.
            spec => {
                if let Some(spec) = spec {
                    self.spec = spec;
                }
                self.retire_container().await;
                self.create_and_start().await
            }
        }
    }

    fn can_switch_binary(&self) -> bool {
        true
    }

    /// A new container from `binary`'s image on the same volume and port: what replacing the
    /// image tag in a deployment does. The old container's log is kept ahead of the new one's.
    async fn restart_as(&mut self, spec: ServerSpec, binary: &ProvisionedServer) -> Result<()> {
        if self.container_running().await {
            RunningServer::stop(self, StopKind::Graceful).await?;
        }
        let image = image::resolve(
            &self.docker,
            binary,
            &self.options.images,
            self.options.pull,
        )
        .await
        .map_err(|e| self.fail(e))?;
        self.retire_container().await;
        self.image = image;
        self.spec = spec;
        self.create_and_start().await
    }

    async fn log_tail(&self, n: usize) -> Vec<String> {
        tail_lines(&self.log_text().await, n)
    }

    async fn save_log(&self, dest: &Path) -> std::io::Result<()> {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(dest, self.log_text().await)
    }

    async fn remove(mut self: Box<Self>) -> Result<()> {
        let stopped = RunningServer::stop(self.as_mut(), StopKind::Graceful).await;
        let problems = self.cleanup().await;
        stopped?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(self.fail(format!("could not remove: {}", problems.join("; "))))
        }
    }
}

impl Drop for ContainerServer {
    /// Errors and panics: remove what is left. testcontainers removes the container when its
    /// handle drops; the volume and network are ours, removed on a short-lived thread with its
    /// own runtime so this works whatever runtime (or none) is current.
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        drop(self.container.take());
        let docker = self.docker.clone();
        let volume = self.volume.clone();
        let network = self.network.take();
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let force = RemoveVolumeOptionsBuilder::default().force(true).build();
                let _ = docker.remove_volume(&volume, Some(force)).await;
                if let Some(net) = network {
                    let _ = docker.remove_network(&net).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// What a sweep removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
    pub networks: Vec<String>,
}

impl Swept {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.volumes.is_empty() && self.networks.is_empty()
    }
}

/// Remove containers, volumes and networks labelled by a cachegate harness that is no longer
/// running (killed, crashed, or exited without cleaning up), or, with `run`, by that run.
pub async fn sweep(docker: &Docker, run: Option<&str>) -> Result<Swept> {
    let stale = |labels: Option<&HashMap<String, String>>| -> bool {
        let Some(labels) = labels else { return false };
        if labels.get(OWNER_LABEL).map(String::as_str) != Some("cachegate") {
            return false;
        }
        match run {
            Some(run) => labels.get(RUN_LABEL).map(String::as_str) == Some(run),
            None => !owner_alive(labels.get(HARNESS_LABEL).map_or("", String::as_str)),
        }
    };
    let owner = HashMap::from([(
        "label".to_string(),
        vec![format!("{OWNER_LABEL}=cachegate")],
    )]);
    let io = |what: &str, e: testcontainers::bollard::errors::Error| Error::Server {
        server: "docker".into(),
        message: format!("sweeping {what}: {e}"),
    };
    let mut swept = Swept::default();
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&owner)
                .build(),
        ))
        .await
        .map_err(|e| io("containers", e))?;
    for c in containers {
        if stale(c.labels.as_ref()) {
            let id = c.id.unwrap_or_default();
            let force = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            if docker.remove_container(&id, Some(force)).await.is_ok() {
                swept.containers.push(id.chars().take(12).collect());
            }
        }
    }
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default().filters(&owner).build(),
        ))
        .await
        .map_err(|e| io("volumes", e))?;
    for v in volumes.volumes.unwrap_or_default() {
        if stale(Some(&v.labels)) {
            let force = RemoveVolumeOptionsBuilder::default().force(true).build();
            if docker.remove_volume(&v.name, Some(force)).await.is_ok() {
                swept.volumes.push(v.name);
            }
        }
    }
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&owner)
                .build(),
        ))
        .await
        .map_err(|e| io("networks", e))?;
    for n in networks {
        if stale(n.labels.as_ref()) {
            let name = n.name.unwrap_or_default();
            if docker.remove_network(&name).await.is_ok() {
                swept.networks.push(name);
            }
        }
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limits_parse_with_units() {
        assert_eq!(parse_memory("512m"), Ok(512 << 20));
        assert_eq!(parse_memory("2g"), Ok(2 << 30));
        assert_eq!(parse_memory("64MB"), Ok(64 << 20));
        assert!(parse_memory("1k").unwrap_err().contains("at least 6m"));
        assert!(parse_memory("lots")
            .unwrap_err()
            .contains("runtime.container.memory"));
        assert!(parse_memory("5t").unwrap_err().contains("unit"));
    }
}
