//! The fast tier's scripted runtime: nodes that start, fail and are removed as a script says,
//! so a deployment's own bookkeeping is tested without a server, Docker or a network: which
//! nodes are started with what, which are removed when a later node fails to start (nothing the
//! harness started may outlive the cell), and the order in which a deployment is taken down.

use std::path::Path;
use std::sync::{Arc, Mutex};

use cachegate::error::{Error, Result};
use cachegate::server::{
    Deployment, Node, NodeStarter, Persistence, ProvisionedServer, Role, RunningServer,
    RuntimeIdentity, ServerSettings, ServerSpec, StopKind, Topology,
};

/// What the scripted runtime was asked to do, in order.
type Log = Arc<Mutex<Vec<String>>>;

fn say(log: &Log, line: String) {
    log.lock().unwrap().push(line);
}

/// Starts scripted nodes on ports counting up from 20000; the node named in `fail` does not
/// start, the way a server that exits during start-up does not.
struct ScriptedStarter {
    log: Log,
    fail: &'static str,
    next_port: u16,
    /// The `replicaof` / cluster lines each node was started with.
    settings: Vec<(String, Vec<String>)>,
}

impl ScriptedStarter {
    fn failing_on(fail: &'static str) -> ScriptedStarter {
        ScriptedStarter {
            log: Log::default(),
            fail,
            next_port: 20000,
            settings: vec![],
        }
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl NodeStarter for ScriptedStarter {
    async fn start(&mut self, spec: &ServerSpec, node: &str) -> Result<Box<dyn RunningServer>> {
        self.settings
            .push((node.to_string(), spec.settings.extra.clone()));
        if node == self.fail {
            say(&self.log, format!("start {node}: failed"));
            return Err(Error::Server {
                server: spec.server.to_string(),
                message: "exited during start-up; log: bind: Address already in use".into(),
            });
        }
        say(&self.log, format!("start {node}"));
        self.next_port += 1;
        Ok(Box::new(ScriptedServer::new(
            node,
            spec,
            self.next_port,
            &self.log,
        )))
    }

    async fn start_other(
        &mut self,
        spec: &ServerSpec,
        _binary: &ProvisionedServer,
        node: &str,
    ) -> Result<Box<dyn RunningServer>> {
        self.start(spec, node).await
    }
}

struct ScriptedServer {
    name: String,
    spec: ServerSpec,
    port: u16,
    log: Log,
    /// `remove` reports this problem (after logging that it was asked).
    remove_fails: bool,
}

impl ScriptedServer {
    fn new(name: &str, spec: &ServerSpec, port: u16, log: &Log) -> ScriptedServer {
        ScriptedServer {
            name: name.to_string(),
            spec: spec.clone(),
            port,
            log: log.clone(),
            remove_fails: false,
        }
    }
}

#[async_trait::async_trait]
impl RunningServer for ScriptedServer {
    fn spec(&self) -> &ServerSpec {
        &self.spec
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn identity(&self) -> RuntimeIdentity {
        RuntimeIdentity {
            runtime: "scripted".into(),
            ..Default::default()
        }
    }
    fn last_start_ms(&self) -> f64 {
        1.0
    }
    async fn is_running(&mut self) -> bool {
        true
    }
    async fn stop(&mut self, how: StopKind) -> Result<()> {
        say(&self.log, format!("stop {} {how:?}", self.name));
        Ok(())
    }
    async fn restart(&mut self, _new_spec: Option<ServerSpec>) -> Result<()> {
        say(&self.log, format!("restart {}", self.name));
        Ok(())
    }
    async fn log_tail(&self, _n: usize) -> Vec<String> {
        vec![]
    }
    async fn save_log(&self, _dest: &Path) -> std::io::Result<()> {
        Ok(())
    }
    async fn remove(self: Box<Self>) -> Result<()> {
        say(&self.log, format!("remove {}", self.name));
        if self.remove_fails {
            return Err(Error::Server {
                server: self.spec.server.to_string(),
                message: format!("{}: could not remove: docker rm: conflict", self.name),
            });
        }
        Ok(())
    }
}

fn spec() -> ServerSpec {
    ServerSpec {
        server: "redis@7.4".parse().unwrap(),
        persistence: Persistence::none(),
        settings: ServerSettings::default(),
        mode: Default::default(),
        secrets: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Start `topology` with the scripted runtime; the start must fail.
fn failed_start(topology: &str, starter: &mut ScriptedStarter) -> String {
    let topology: Topology = topology.parse().unwrap();
    match runtime().block_on(Deployment::start(topology, &spec(), starter)) {
        Ok(_) => panic!("the deployment started although {} failed", starter.fail),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_replica_that_fails_to_start_takes_the_nodes_started_before_it_down() {
    let mut starter = ScriptedStarter::failing_on("replica-2");
    let error = failed_start("replica:3", &mut starter);
    // The error names the node, and keeps the runtime's own words.
    assert_eq!(
        error,
        "server redis@7.4 failed: replica-2: exited during start-up; log: bind: Address already in use"
    );
    // Nothing after the failed node is started; everything before it is removed.
    assert_eq!(
        starter.log(),
        [
            "start primary",
            "start replica-1",
            "start replica-2: failed",
            "remove primary",
            "remove replica-1",
        ]
    );
    // Each replica was started pointing at the primary's port.
    let settings = &starter.settings;
    assert_eq!(settings[0], ("primary".to_string(), vec![]));
    for (node, extra) in &settings[1..] {
        assert_eq!(extra, &["replicaof 127.0.0.1 20001"], "{node}");
    }
}

#[test]
fn a_cluster_node_that_fails_to_start_takes_every_shard_started_before_it_down() {
    let mut starter = ScriptedStarter::failing_on("shard-2-replica-1");
    let error = failed_start("cluster:3:1", &mut starter);
    assert!(
        error.contains("shard-2-replica-1: exited during start-up"),
        "{error}"
    );
    assert_eq!(
        starter.log(),
        [
            "start shard-1",
            "start shard-2",
            "start shard-3",
            "start shard-1-replica-1",
            "start shard-2-replica-1: failed",
            "remove shard-1",
            "remove shard-2",
            "remove shard-3",
            "remove shard-1-replica-1",
        ]
    );
    let settings = &starter.settings;
    for (node, extra) in settings {
        assert!(
            extra.iter().any(|l| l == "cluster-enabled yes"),
            "{node}: {extra:?}"
        );
    }
}

#[test]
fn the_primary_failing_to_start_leaves_nothing_to_remove() {
    let mut starter = ScriptedStarter::failing_on("primary");
    let error = failed_start("sentinel", &mut starter);
    assert!(error.contains("primary: exited during start-up"), "{error}");
    assert_eq!(starter.log(), ["start primary: failed"]);
}

#[test]
fn removal_takes_the_sentinels_down_first_and_removes_every_node_despite_a_failure() {
    let log = Log::default();
    let node = |name: &str, role: Role, port: u16| {
        let mut server = ScriptedServer::new(name, &spec(), port, &log);
        server.remove_fails = name == "primary";
        Node {
            name: name.to_string(),
            role,
            shard: None,
            server: Box::new(server),
        }
    };
    let mut deployment = Deployment {
        topology: "sentinel:2".parse().unwrap(),
        nodes: vec![
            node("primary", Role::Primary, 1),
            node("replica-1", Role::Replica, 2),
            node("replica-2", Role::Replica, 3),
            node("sentinel-1", Role::Sentinel, 4),
            node("sentinel-2", Role::Sentinel, 5),
            node("sentinel-3", Role::Sentinel, 6),
        ],
        formed_ms: 0.0,
    };
    let result = runtime().block_on(deployment.remove());
    // Sentinels first (none may start a failover while the data nodes go down), then the data
    // nodes in their order; the primary's failure does not stop the replicas' removal.
    assert_eq!(
        *log.lock().unwrap(),
        [
            "remove sentinel-1",
            "remove sentinel-2",
            "remove sentinel-3",
            "remove primary",
            "remove replica-1",
            "remove replica-2",
        ]
    );
    let error = result
        .expect_err("the primary's failure is reported")
        .to_string();
    assert!(error.contains("primary: could not remove"), "{error}");
    assert!(deployment.nodes.is_empty());
}
