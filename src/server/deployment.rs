//! A deployment: the servers of one cell in their roles (primary, replicas, Sentinels, cluster
//! shards), all of the cell's version and on the cell's runtime. It starts the nodes, waits until
//! the topology is *formed* (replicas linked, Sentinels agreeing, every hash slot served), says
//! where each node listens (for the app's settings), and hands scenarios the node a fault is
//! aimed at. A standalone server is the one-node deployment, so scenarios that know nothing of
//! topologies run unchanged on `nodes[0]`.
//!
//! Every node listens on 127.0.0.1 (processes, or containers on the host network), so what the
//! servers tell clients about each other (a Sentinel's primary, a cluster's MOVED) is an address
//! the harness may use.

use std::time::{Duration, Instant};

use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use serde::{Deserialize, Serialize};

use super::runtime::{Endpoint, RunningServer};
use super::spec::{Persistence, ServerMode, ServerSettings, ServerSpec};
use super::topology::{Topology, SENTINELS, SENTINEL_SERVICE};
use crate::error::{Error, Result};
pub use crate::results::ran::NodeInfo;

/// How long a topology may take to form (a full sync per replica; Sentinels discover each other
/// through hello messages every 2 s).
const FORM_TIMEOUT: Duration = Duration::from_secs(40);
/// Hash slots of a Redis Cluster.
pub const CLUSTER_SLOTS: u16 = 16384;

/// What a node does in its deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Replica,
    Sentinel,
}

/// One server of a deployment.
pub struct Node {
    /// `primary`, `replica-1`, `sentinel-2`, `shard-3`, `shard-3-replica-1`: stable within a cell.
    pub name: String,
    /// The role it was started in (a failover may change it: see `current_role`).
    pub role: Role,
    /// Cluster shard (1-based) for cluster nodes.
    pub shard: Option<u8>,
    pub server: Box<dyn RunningServer>,
}

/// Starts one node on the cell's runtime (a process or a container).
#[async_trait::async_trait]
pub trait NodeStarter: Send {
    async fn start(&mut self, spec: &ServerSpec, node: &str) -> Result<Box<dyn RunningServer>>;
    /// Start a node of another server binary (a rolling upgrade's new version) on the same
    /// runtime, with the same options.
    async fn start_other(
        &mut self,
        spec: &ServerSpec,
        binary: &super::ProvisionedServer,
        node: &str,
    ) -> Result<Box<dyn RunningServer>>;
}

pub struct Deployment {
    pub topology: Topology,
    pub nodes: Vec<Node>,
    /// Milliseconds from the first node's start until the topology was formed.
    pub formed_ms: f64,
}

impl Deployment {
    /// Start every node of `topology` from the cell's `spec`, and wait until it is formed. On
    /// failure, the nodes already started are removed before the error is returned.
    pub async fn start(
        topology: Topology,
        spec: &ServerSpec,
        starter: &mut dyn NodeStarter,
    ) -> Result<Deployment> {
        let started = Instant::now();
        let mut deployment = Deployment {
            topology,
            nodes: Vec::new(),
            formed_ms: 0.0,
        };
        match deployment.start_nodes(spec, starter).await {
            Ok(()) => {
                deployment.formed_ms = started.elapsed().as_secs_f64() * 1000.0;
                tracing::debug!(
                    topology = %deployment.topology,
                    nodes = deployment.nodes.len(),
                    ms = %format_args!("{:.0}", deployment.formed_ms),
                    "deployment formed"
                );
                Ok(deployment)
            }
            Err(e) => {
                let _ = deployment.remove().await;
                Err(e)
            }
        }
    }

    async fn start_nodes(
        &mut self,
        spec: &ServerSpec,
        starter: &mut dyn NodeStarter,
    ) -> Result<()> {
        match self.topology {
            Topology::Standalone => {
                self.add(starter, spec, "primary", Role::Primary, None)
                    .await?;
            }
            Topology::Replicas(n) | Topology::Sentinel { replicas: n } => {
                self.add(starter, spec, "primary", Role::Primary, None)
                    .await?;
                let primary = self.nodes[0].server.port();
                for i in 1..=n {
                    let replica = replica_spec(spec, primary);
                    self.add(
                        starter,
                        &replica,
                        &format!("replica-{i}"),
                        Role::Replica,
                        None,
                    )
                    .await?;
                }
                self.wait_replicas_linked().await?;
                if self.topology.has_sentinels() {
                    for i in 1..=SENTINELS {
                        let sentinel = sentinel_spec(spec, primary);
                        self.add(
                            starter,
                            &sentinel,
                            &format!("sentinel-{i}"),
                            Role::Sentinel,
                            None,
                        )
                        .await?;
                    }
                    self.wait_sentinels_agree(primary, n).await?;
                }
            }
            Topology::Cluster {
                primaries,
                replicas,
            } => {
                let node_spec = cluster_spec(spec);
                for shard in 1..=primaries {
                    self.add(
                        starter,
                        &node_spec,
                        &format!("shard-{shard}"),
                        Role::Primary,
                        Some(shard),
                    )
                    .await?;
                }
                for shard in 1..=primaries {
                    for r in 1..=replicas {
                        let name = format!("shard-{shard}-replica-{r}");
                        self.add(starter, &node_spec, &name, Role::Replica, Some(shard))
                            .await?;
                    }
                }
                self.form_cluster(primaries).await?;
            }
        }
        Ok(())
    }

    async fn add(
        &mut self,
        starter: &mut dyn NodeStarter,
        spec: &ServerSpec,
        name: &str,
        role: Role,
        shard: Option<u8>,
    ) -> Result<()> {
        let server = starter
            .start(spec, name)
            .await
            .map_err(|e| naming(name, e))?;
        self.nodes.push(Node {
            name: name.to_string(),
            role,
            shard,
            server,
        });
        Ok(())
    }

    /// The nodes that hold data (not Sentinels).
    pub fn data_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role != Role::Sentinel)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    /// Where clients find each node, for the app's settings.
    pub fn addresses(&self) -> Addresses {
        let url = |n: &Node| n.server.url().trim_end_matches('/').to_string();
        let of = |role: Role| -> Vec<String> {
            self.nodes
                .iter()
                .filter(|n| n.role == role)
                .map(url)
                .collect()
        };
        Addresses {
            primary: url(&self.nodes[0]),
            port: self.nodes[0].server.port(),
            replicas: of(Role::Replica),
            sentinels: self
                .nodes
                .iter()
                .filter(|n| n.role == Role::Sentinel)
                .map(|n| n.server.port())
                .collect(),
            cluster: if self.topology.is_cluster() {
                self.data_nodes().map(url).collect()
            } else {
                vec![]
            },
            ..Addresses::credentials(self.nodes[0].server.as_ref())
        }
    }

    /// Every node for the report, with the role each reports now.
    pub async fn describe(&self) -> Vec<NodeInfo> {
        let mut out = Vec::new();
        for n in &self.nodes {
            let role_at_end = if n.role == Role::Sentinel {
                None
            } else {
                current_role(&n.server.endpoint()).await
            };
            out.push(NodeInfo {
                name: n.name.clone(),
                role: role_name(n.role).into(),
                role_at_end,
                port: n.server.port(),
                shard: n.shard,
                identity: n.server.identity(),
                start_ms: n.server.last_start_ms(),
                log: None,
            });
        }
        out
    }

    /// The node the Sentinels name as primary now (after a failover, a former replica).
    pub async fn sentinel_primary(&self) -> Option<u16> {
        for n in self.nodes.iter().filter(|n| n.role == Role::Sentinel) {
            if let Some(port) = sentinel_named_primary(&n.server.endpoint()).await {
                return Some(port);
            }
        }
        None
    }

    /// Stop every node and remove what its runtime created; reports the first problem.
    pub async fn remove(&mut self) -> Result<()> {
        let mut first_error = None;
        // Sentinels first, so none of them starts a failover while the data nodes go down.
        self.nodes.sort_by_key(|n| n.role != Role::Sentinel);
        for node in self.nodes.drain(..) {
            if let Err(e) = node.server.remove().await {
                first_error.get_or_insert(naming(&node.name, e));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn wait_replicas_linked(&self) -> Result<()> {
        let replicas: Vec<&Node> = self
            .nodes
            .iter()
            .filter(|n| n.role == Role::Replica)
            .collect();
        self.wait_until("replicas report master_link_status:up", || async {
            for r in &replicas {
                let info = info(&r.server.endpoint(), "replication").await;
                if info_field(&info, "master_link_status") != Some("up") {
                    return Err(format!(
                        "{}: master_link_status {}",
                        r.name,
                        info_field(&info, "master_link_status").unwrap_or("unknown")
                    ));
                }
            }
            Ok(())
        })
        .await
    }

    async fn wait_sentinels_agree(&self, primary: u16, replicas: u8) -> Result<()> {
        let sentinels: Vec<&Node> = self
            .nodes
            .iter()
            .filter(|n| n.role == Role::Sentinel)
            .collect();
        self.wait_until(
            "the Sentinels agree on the primary and know every node",
            || async {
                for s in &sentinels {
                    let master: redis::RedisResult<Vec<String>> = query(
                        &s.server.endpoint(),
                        redis::cmd("SENTINEL").arg("master").arg(SENTINEL_SERVICE),
                    )
                    .await;
                    let fields = master.map_err(|e| format!("{}: {e}", s.name))?;
                    let field = |k: &str| {
                        fields
                            .chunks(2)
                            .find(|kv| kv[0] == k)
                            .and_then(|kv| kv.get(1).cloned())
                            .unwrap_or_default()
                    };
                    let seen = (
                        field("port"),
                        field("num-slaves"),
                        field("num-other-sentinels"),
                    );
                    let want = (
                        primary.to_string(),
                        replicas.to_string(),
                        (SENTINELS - 1).to_string(),
                    );
                    if seen != want {
                        return Err(format!(
                            "{} sees primary port {}, {} replicas, {} other sentinels",
                            s.name, seen.0, seen.1, seen.2
                        ));
                    }
                }
                Ok(())
            },
        )
        .await
    }

    /// Introduce the nodes to each other, give each primary its share of the slots, attach the
    /// replicas, and wait until every node reports `cluster_state:ok` with all slots assigned.
    async fn form_cluster(&self, primaries: u8) -> Result<()> {
        let fail = |message: String| self.fail(message);
        let mut ids = Vec::new();
        for n in &self.nodes {
            let id: String = query(&n.server.endpoint(), redis::cmd("CLUSTER").arg("MYID"))
                .await
                .map_err(|e| fail(format!("{}: CLUSTER MYID: {e}", n.name)))?;
            ids.push(id);
        }
        let first = self.nodes[0].server.endpoint();
        for n in &self.nodes[1..] {
            let _: () = query(
                &first,
                redis::cmd("CLUSTER")
                    .arg("MEET")
                    .arg("127.0.0.1")
                    .arg(n.server.port()),
            )
            .await
            .map_err(|e| fail(format!("CLUSTER MEET {}: {e}", n.name)))?;
        }
        for (i, n) in self.nodes.iter().take(primaries as usize).enumerate() {
            let (from, to) = slot_range(i as u16, primaries as u16);
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("ADDSLOTS");
            for slot in from..=to {
                cmd.arg(slot);
            }
            let _: () = query(&n.server.endpoint(), &cmd)
                .await
                .map_err(|e| fail(format!("{}: CLUSTER ADDSLOTS: {e}", n.name)))?;
        }
        let total = self.nodes.len();
        let nodes = &self.nodes;
        self.wait_until("every node knows every other", || async {
            for n in nodes {
                let info = cluster_info(&n.server.endpoint()).await;
                let known = info_field(&info, "cluster_known_nodes").unwrap_or("0");
                if known != total.to_string() {
                    return Err(format!("{} knows {known} of {total} nodes", n.name));
                }
            }
            Ok(())
        })
        .await?;
        for (n, _) in nodes
            .iter()
            .zip(&ids)
            .filter(|(n, _)| n.role == Role::Replica)
        {
            let shard = n.shard.expect("cluster replicas have a shard") as usize;
            let primary_id = &ids[shard - 1];
            let _: () = query(
                &n.server.endpoint(),
                redis::cmd("CLUSTER").arg("REPLICATE").arg(primary_id),
            )
            .await
            .map_err(|e| fail(format!("{}: CLUSTER REPLICATE: {e}", n.name)))?;
        }
        self.wait_until(
            "cluster_state:ok with every slot assigned on every node",
            || async {
                for n in nodes {
                    let info = cluster_info(&n.server.endpoint()).await;
                    let state = info_field(&info, "cluster_state").unwrap_or("unknown");
                    let slots = info_field(&info, "cluster_slots_ok").unwrap_or("0");
                    if state != "ok" || slots != CLUSTER_SLOTS.to_string() {
                        return Err(format!(
                            "{}: cluster_state {state}, {slots} slots ok",
                            n.name
                        ));
                    }
                }
                Ok(())
            },
        )
        .await?;
        self.wait_replicas_linked().await
    }

    /// Poll `check` until it passes or `FORM_TIMEOUT` runs out; the error names what was
    /// awaited and the last thing seen.
    async fn wait_until<F, Fut>(&self, what: &str, mut check: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(), String>>,
    {
        let started = Instant::now();
        loop {
            let last = match check().await {
                Ok(()) => return Ok(()),
                Err(seen) => seen,
            };
            if started.elapsed() > FORM_TIMEOUT {
                return Err(self.fail(format!(
                    "the {} topology did not form within {FORM_TIMEOUT:?}: waited for {what}; last seen: {last}",
                    self.topology
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn fail(&self, message: String) -> Error {
        Error::Server {
            server: self
                .nodes
                .first()
                .map(|n| n.server.spec().server.to_string())
                .unwrap_or_default(),
            message,
        }
    }
}

/// A node's server error, with the node's name in front (`replica-2: exited during start-up`).
fn naming(node: &str, e: Error) -> Error {
    match e {
        Error::Server { server, message } => Error::Server {
            server,
            message: format!("{node}: {message}"),
        },
        other => other,
    }
}

/// Where clients find the nodes of a deployment: the values of the settings placeholders.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Addresses {
    /// The (first) primary's URL, `redis://[:password@]127.0.0.1:PORT`.
    pub primary: String,
    pub port: u16,
    pub replicas: Vec<String>,
    /// Sentinel ports on 127.0.0.1 (Sentinels run without a password).
    pub sentinels: Vec<u16>,
    /// Every data node's URL (cluster topologies only).
    pub cluster: Vec<String>,
    /// `{user:NAME}`: the primary's URL logging in as each `[[server.users]]` user.
    pub users: std::collections::BTreeMap<String, String>,
    /// `{ca_cert}`, `{client_cert}`, ...: the cell's certificate files on the `tls` transport.
    pub tls_files: std::collections::BTreeMap<String, String>,
}

impl Addresses {
    /// The addresses of a one-server deployment.
    pub fn standalone(server: &dyn RunningServer) -> Addresses {
        Addresses {
            primary: server.url().trim_end_matches('/').to_string(),
            port: server.port(),
            ..Addresses::credentials(server)
        }
    }

    /// The ACL users' URLs and the certificate files of `server` (the primary).
    fn credentials(server: &dyn RunningServer) -> Addresses {
        let spec = server.spec();
        Addresses {
            users: spec
                .settings
                .users
                .iter()
                .filter_map(|u| {
                    let url = spec.user_url(server.port(), &u.name)?;
                    Some((u.name.clone(), url.trim_end_matches('/').to_string()))
                })
                .collect(),
            tls_files: spec
                .tls()
                .map(|m| {
                    super::tls::FILE_PLACEHOLDERS
                        .iter()
                        .map(|(name, file)| (name.to_string(), m.path(file).display().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            ..Default::default()
        }
    }
}

/// The replica's spec: the cell's server and persistence, following the primary.
pub fn replica_spec(spec: &ServerSpec, primary_port: u16) -> ServerSpec {
    let mut replica = spec.clone();
    replica
        .settings
        .extra
        .push(format!("replicaof 127.0.0.1 {primary_port}"));
    if let Some(pw) = &spec.settings.requirepass {
        replica
            .settings
            .extra
            .push(format!("masterauth {}", quote(pw)));
    }
    replica
}

/// A Sentinel watching the primary: quorum 2 of 3, a primary is down after 1 s without an
/// answer (the docs' example uses 60 s; a test wants the failover within seconds).
fn sentinel_spec(spec: &ServerSpec, primary_port: u16) -> ServerSpec {
    let mut extra = vec![
        format!("sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {primary_port} 2"),
        format!("sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000"),
        format!("sentinel failover-timeout {SENTINEL_SERVICE} 10000"),
        format!("sentinel parallel-syncs {SENTINEL_SERVICE} 1"),
    ];
    if let Some(pw) = &spec.settings.requirepass {
        extra.push(format!(
            "sentinel auth-pass {SENTINEL_SERVICE} {}",
            quote(pw)
        ));
    }
    ServerSpec {
        server: spec.server.clone(),
        persistence: Persistence::none(),
        settings: ServerSettings {
            extra,
            ..Default::default()
        },
        mode: ServerMode::Sentinel,
        secrets: None,
    }
}

/// A cluster node's spec: the cell's server in cluster mode. Replicas also authenticate to
/// their primary with the cell's password.
fn cluster_spec(spec: &ServerSpec) -> ServerSpec {
    let mut node = spec.clone();
    node.settings.extra.extend([
        "cluster-enabled yes".to_string(),
        "cluster-config-file nodes.conf".to_string(),
        "cluster-node-timeout 2000".to_string(),
    ]);
    if let Some(pw) = &spec.settings.requirepass {
        node.settings
            .extra
            .push(format!("masterauth {}", quote(pw)));
    }
    node
}

/// A config value in double quotes (see `spec::quote_config`).
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Shard `i` of `n`'s slots, an even split with the remainder on the last.
pub fn slot_range(i: u16, n: u16) -> (u16, u16) {
    let per = CLUSTER_SLOTS / n;
    let from = i * per;
    let to = if i + 1 == n {
        CLUSTER_SLOTS - 1
    } else {
        from + per - 1
    };
    (from, to)
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Primary => "primary",
        Role::Replica => "replica",
        Role::Sentinel => "sentinel",
    }
}

/// One control-plane command (not the hot path: the load loops have their own client).
pub async fn query<T: redis::FromRedisValue>(
    endpoint: &Endpoint,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    if endpoint.tls.is_some() {
        // Topologies and the scenarios that use this are refused over TLS at `check`.
        return Err(redis::RedisError::from(std::io::Error::other(
            "control queries over TLS are not supported",
        )));
    }
    let mut settings = RedisConnectionInfo::default().set_skip_set_lib_name();
    if let Some(pw) = &endpoint.password {
        settings = settings.set_password(pw);
    }
    if let Some(user) = &endpoint.user {
        settings = settings.set_username(user);
    }
    let info = ConnectionAddr::Tcp("127.0.0.1".into(), endpoint.addr.port())
        .into_connection_info()?
        .set_redis_settings(settings);
    let client = redis::Client::open(info)?;
    let work = async {
        let mut con = client.get_multiplexed_async_connection().await?;
        cmd.query_async(&mut con).await
    };
    tokio::time::timeout(Duration::from_secs(2), work)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer within 2 s",
            )))
        })
}

/// `INFO section` as text ("" when the node does not answer).
pub async fn info(endpoint: &Endpoint, section: &str) -> String {
    query(endpoint, redis::cmd("INFO").arg(section))
        .await
        .unwrap_or_default()
}

async fn cluster_info(endpoint: &Endpoint) -> String {
    query(endpoint, redis::cmd("CLUSTER").arg("INFO"))
        .await
        .unwrap_or_default()
}

/// A `name:value` field of INFO-style text.
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// `primary` or `replica`, as the node itself reports it now (None if it does not answer).
pub async fn current_role(endpoint: &Endpoint) -> Option<String> {
    let info = info(endpoint, "replication").await;
    match info_field(&info, "role")? {
        "master" => Some("primary".into()),
        "slave" => Some("replica".into()),
        other => Some(other.into()),
    }
}

/// Where a node stands in the replication stream, from `INFO replication`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicationState {
    /// `master_repl_offset`: on a primary, the bytes of stream it has produced; on a replica,
    /// how much of its primary's stream it has applied.
    pub offset: u64,
    /// A replica whose link to its primary is up (`master_link_status:up`); false on a primary.
    pub linked: bool,
}

/// None when the node does not answer.
pub async fn replication_state(endpoint: &Endpoint) -> Option<ReplicationState> {
    let info = info(endpoint, "replication").await;
    Some(ReplicationState {
        offset: info_field(&info, "master_repl_offset")?.parse().ok()?,
        linked: info_field(&info, "master_link_status") == Some("up"),
    })
}

/// The primary's port a Sentinel names for the cell's service now (None: no answer yet).
pub async fn sentinel_named_primary(sentinel: &Endpoint) -> Option<u16> {
    let addr: Vec<String> = query(
        sentinel,
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(SENTINEL_SERVICE),
    )
    .await
    .ok()?;
    addr.get(1)?.parse().ok()
}

/// Polls the Sentinels until one of them names a primary other than `old` (its port), or
/// `give_up` says stop. Shared by the outage (how long the promotion took) and durability
/// (which node to read the acknowledged writes back from) scenarios.
pub async fn sentinel_promotion(
    sentinels: &[Endpoint],
    old: u16,
    give_up: impl Fn() -> bool,
) -> Option<u16> {
    while !give_up() {
        for s in sentinels {
            if let Some(port) = sentinel_named_primary(s).await.filter(|p| *p != old) {
                return Some(port);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_split_evenly_and_cover_everything() {
        for n in 1..=9u16 {
            let mut next = 0;
            for i in 0..n {
                let (from, to) = slot_range(i, n);
                assert_eq!(from, next);
                next = to + 1;
            }
            assert_eq!(next, CLUSTER_SLOTS);
        }
    }

    #[test]
    fn info_fields_are_read_by_exact_name() {
        let info = "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nmaster_link_down_since_seconds:-1\r\n";
        assert_eq!(info_field(info, "role"), Some("slave"));
        assert_eq!(info_field(info, "master_link_status"), Some("up"));
        assert_eq!(info_field(info, "master_link"), None);
    }
}
