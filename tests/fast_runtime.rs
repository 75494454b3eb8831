//! The fast tier's scripted runtime: nodes that start, fail, answer and are removed as a script
//! says, so a deployment's own logic is tested without a server or Docker: which nodes are
//! started with what, which are removed when a later node fails to start (nothing the harness
//! started may outlive the cell), the order in which a deployment is taken down, and how long it
//! waits for a topology to form or a Sentinel to promote (scripted nodes answer RESP on
//! 127.0.0.1 as the script says: a replica whose link comes up late, a Sentinel that names the
//! new primary only after a while).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use cachegate::error::{Error, Result};
use cachegate::server::{
    self, Deployment, Node, NodeStarter, Persistence, ProvisionedServer, Role, RunningServer,
    RuntimeIdentity, ServerSettings, ServerSpec, StopKind, Topology,
};

/// What the scripted runtime was asked to do, in order.
type Log = Arc<Mutex<Vec<String>>>;

fn say(log: &Log, line: String) {
    log.lock().unwrap().push(line);
}

/// What a scripted node answers a command.
type Script = fn(&Ask) -> Answer;

/// A command as a scripted node sees it.
struct Ask<'a> {
    node: &'a str,
    /// Its words, the name upper-cased.
    command: &'a [String],
    /// How many times this node was asked this command (and first argument) before.
    before: usize,
    /// Every started node's port, by name.
    ports: &'a HashMap<String, u16>,
}

enum Answer {
    Bulk(String),
    Array(Vec<String>),
}

/// Starts scripted nodes; the node named in `fail` does not start, the way a server that exits
/// during start-up does not. Without a script the nodes answer nothing and get ports counting
/// up from 20000; with one, each answers RESP on its own 127.0.0.1 port.
struct ScriptedStarter {
    log: Log,
    fail: Option<&'static str>,
    next_port: u16,
    /// The `replicaof` / cluster lines each node was started with.
    settings: Vec<(String, Vec<String>)>,
    script: Option<Script>,
    heard: Arc<Mutex<Heard>>,
}

/// What the scripted nodes were told, shared by their answering tasks.
#[derive(Default)]
struct Heard {
    /// How many times each node was asked each command, by "node COMMAND ARG".
    asked: HashMap<String, usize>,
    /// Every command, by node, in the order it arrived.
    commands: Vec<(String, Vec<String>)>,
    /// Every started node's port, by name.
    ports: HashMap<String, u16>,
}

impl ScriptedStarter {
    fn new(fail: Option<&'static str>, script: Option<Script>) -> ScriptedStarter {
        ScriptedStarter {
            log: Log::default(),
            fail,
            next_port: 20000,
            settings: vec![],
            script,
            heard: Default::default(),
        }
    }

    fn failing_on(node: &'static str) -> ScriptedStarter {
        ScriptedStarter::new(Some(node), None)
    }

    fn answering(script: Script) -> ScriptedStarter {
        ScriptedStarter::new(None, Some(script))
    }

    fn asked(&self, node: &str, command: &str) -> usize {
        let heard = self.heard.lock().unwrap();
        let asked = heard.asked.get(&format!("{node} {command}"));
        asked.copied().unwrap_or(0)
    }

    /// The commands `node` heard that start with `prefix` (e.g. `["CLUSTER", "MEET"]`).
    fn heard(&self, node: &str, prefix: &[&str]) -> Vec<Vec<String>> {
        let heard = self.heard.lock().unwrap();
        heard
            .commands
            .iter()
            .filter(|(n, c)| n == node && c.len() >= prefix.len() && c[..prefix.len()] == *prefix)
            .map(|(_, c)| c.clone())
            .collect()
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
        if self.fail == Some(node) {
            say(&self.log, format!("start {node}: failed"));
            return Err(Error::Server {
                server: spec.server.to_string(),
                message: "exited during start-up; log: bind: Address already in use".into(),
            });
        }
        say(&self.log, format!("start {node}"));
        let Some(script) = self.script else {
            self.next_port += 1;
            return Ok(Box::new(ScriptedServer::new(
                node,
                spec,
                self.next_port,
                &self.log,
            )));
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        self.heard
            .lock()
            .unwrap()
            .ports
            .insert(node.to_string(), port);
        let mut server = ScriptedServer::new(node, spec, port, &self.log);
        server.answering = Some(tokio::spawn(answer(
            listener,
            node.to_string(),
            script,
            self.heard.clone(),
        )));
        Ok(Box::new(server))
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
    /// The task answering on `port`, stopped by `remove`.
    answering: Option<tokio::task::JoinHandle<()>>,
}

impl ScriptedServer {
    fn new(name: &str, spec: &ServerSpec, port: u16, log: &Log) -> ScriptedServer {
        ScriptedServer {
            name: name.to_string(),
            spec: spec.clone(),
            port,
            log: log.clone(),
            remove_fails: false,
            answering: None,
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
        if let Some(task) = &self.answering {
            task.abort();
        }
        if self.remove_fails {
            return Err(Error::Server {
                server: self.spec.server.to_string(),
                message: format!("could not remove: docker rm: conflict ({})", self.name),
            });
        }
        Ok(())
    }
}

/// Answer RESP commands on `listener` as `script` says, one task per connection.
async fn answer(listener: TcpListener, node: String, script: Script, heard: Arc<Mutex<Heard>>) {
    while let Ok((stream, _)) = listener.accept().await {
        let (node, heard) = (node.clone(), heard.clone());
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            while let Some(command) = read_command(&mut read).await {
                // By the command and its first argument: `INFO replication`, `SENTINEL master`.
                let key = format!("{node} {}", command[..command.len().min(2)].join(" "));
                let (before, ports) = {
                    let mut heard = heard.lock().unwrap();
                    heard.commands.push((node.clone(), command.clone()));
                    let n = heard.asked.entry(key).or_default();
                    *n += 1;
                    (*n - 1, heard.ports.clone())
                };
                let bulk = |s: &str| format!("${}\r\n{s}\r\n", s.len());
                let ask = Ask {
                    node: &node,
                    command: &command,
                    before,
                    ports: &ports,
                };
                let reply = match script(&ask) {
                    Answer::Bulk(text) => bulk(&text),
                    Answer::Array(items) => items
                        .iter()
                        .fold(format!("*{}\r\n", items.len()), |out, item| {
                            out + &bulk(item)
                        }),
                };
                if write.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// One command as a client sends it: an array of bulk strings. `None` at the end of the stream.
async fn read_command(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Vec<String>> {
    let mut line = String::new();
    read.read_line(&mut line).await.ok()?;
    let n: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    let mut words = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        read.read_line(&mut line).await.ok()?;
        let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
        let mut word = vec![0; len + 2];
        read.read_exact(&mut word).await.ok()?;
        word.truncate(len);
        words.push(String::from_utf8(word).ok()?);
    }
    words[0].make_ascii_uppercase();
    Some(words)
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
        Ok(_) => panic!("the deployment started although {:?} failed", starter.fail),
        Err(e) => e.to_string(),
    }
}

/// Start `topology` on nodes answering as `script` says; it must form.
fn formed(
    rt: &tokio::runtime::Runtime,
    topology: &str,
    script: Script,
) -> (ScriptedStarter, Deployment) {
    let mut starter = ScriptedStarter::answering(script);
    let topology: Topology = topology.parse().unwrap();
    let deployment = rt
        .block_on(Deployment::start(topology, &spec(), &mut starter))
        .unwrap_or_else(|e| panic!("the deployment does not form: {e}"));
    (starter, deployment)
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
        server.remove_fails = name == "primary" || name == "replica-2";
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
    // The first problem is reported, with the node it came from.
    let error = result.expect_err("a failure is reported").to_string();
    assert_eq!(
        error,
        "server redis@7.4 failed: primary: could not remove: docker rm: conflict (primary)"
    );
    assert!(deployment.nodes.is_empty());
}

/// Primaries say so; replica-2's link comes up only on its fourth answer, the others' at once.
fn replication(ask: &Ask) -> Answer {
    let info = match (ask.command[0].as_str(), ask.node) {
        ("INFO", "primary") => "# Replication\r\nrole:master\r\n",
        ("INFO", "replica-2") if ask.before < 3 => "role:slave\r\nmaster_link_status:down\r\n",
        ("INFO", _) => "role:slave\r\nmaster_link_status:up\r\n",
        _ => "",
    };
    Answer::Bulk(info.into())
}

#[test]
fn a_replica_deployment_is_formed_once_every_replica_reports_its_link_up() {
    let rt = runtime();
    let (starter, mut deployment) = formed(&rt, "replica:2", replication);
    // Asked until replica-2 said `up` (three `down`s first), and no further.
    assert_eq!(starter.asked("replica-2", "INFO replication"), 4);
    assert_eq!(starter.asked("replica-1", "INFO replication"), 4);
    assert_eq!(starter.asked("primary", "INFO replication"), 0);
    let roles: Vec<_> = rt
        .block_on(deployment.describe())
        .into_iter()
        .map(|n| (n.name, n.role_at_end))
        .collect();
    let role = |r: &str| Some(r.to_string());
    assert_eq!(
        roles,
        [
            ("primary".to_string(), role("primary")),
            ("replica-1".to_string(), role("replica")),
            ("replica-2".to_string(), role("replica")),
        ]
    );
    rt.block_on(deployment.remove()).unwrap();
}

/// Sentinels that discover each other only on their third answer; then they name the primary
/// until their fourth `get-master-addr-by-name`, and replica-1 after it.
fn sentinels(ask: &Ask) -> Answer {
    let port = |node: &str| ask.ports[node].to_string();
    let words: Vec<&str> = ask.command.iter().map(String::as_str).collect();
    match words[..] {
        ["INFO", ..] => replication(ask),
        ["SENTINEL", "master", "cachegate"] => {
            let others = if ask.before < 2 { "1" } else { "2" };
            Answer::Array(
                [
                    ("name", "cachegate".to_string()),
                    ("port", port("primary")),
                    ("num-slaves", "1".into()),
                    ("num-other-sentinels", others.into()),
                ]
                .into_iter()
                .flat_map(|(k, v)| [k.to_string(), v])
                .collect(),
            )
        }
        ["SENTINEL", "get-master-addr-by-name", "cachegate"] => {
            let primary = if ask.before < 3 {
                "primary"
            } else {
                "replica-1"
            };
            Answer::Array(vec!["127.0.0.1".into(), port(primary)])
        }
        _ => Answer::Bulk(String::new()),
    }
}

#[test]
fn sentinels_are_waited_for_until_they_agree_and_a_promotion_until_one_names_the_new_primary() {
    let rt = runtime();
    let (starter, mut deployment) = formed(&rt, "sentinel", sentinels);
    // Each round asks the Sentinels in order and stops at the first that does not see both
    // others yet: sentinel-1 is asked in all 7 rounds, sentinel-2 from the 3rd, sentinel-3 from
    // the 5th, and each agrees on its third answer.
    let asked: Vec<usize> = ["sentinel-1", "sentinel-2", "sentinel-3"]
        .map(|s| starter.asked(s, "SENTINEL master"))
        .to_vec();
    assert_eq!(asked, [7, 5, 3]);
    let node_port = |name: &str| deployment.node(name).unwrap().server.port();
    let (primary, replica) = (node_port("primary"), node_port("replica-1"));
    let endpoints: Vec<_> = deployment
        .nodes
        .iter()
        .filter(|n| n.role == Role::Sentinel)
        .map(|n| n.server.endpoint())
        .collect();
    // sentinel-1 is asked first each round; on its fourth answer it names replica-1.
    let promoted = rt.block_on(server::deployment::sentinel_promotion(
        &endpoints,
        primary,
        || false,
    ));
    assert_eq!(promoted, Some(replica));
    assert_eq!(
        starter.asked("sentinel-1", "SENTINEL get-master-addr-by-name"),
        4
    );
    assert_eq!(
        starter.asked("sentinel-2", "SENTINEL get-master-addr-by-name"),
        3
    );
    // Given up on, the poll says no promotion was seen.
    let polls = std::cell::Cell::new(0);
    let none = rt.block_on(server::deployment::sentinel_promotion(
        &endpoints,
        replica,
        || {
            polls.set(polls.get() + 1);
            polls.get() > 2
        },
    ));
    assert_eq!(none, None);
    rt.block_on(deployment.remove()).unwrap();
}

/// Cluster nodes: each has an id, takes what it is told, and reports the cluster formed (and
/// the replicas their links up).
fn cluster(ask: &Ask) -> Answer {
    let words: Vec<&str> = ask.command.iter().map(String::as_str).collect();
    Answer::Bulk(match words[..] {
        ["INFO", ..] => return replication(ask),
        ["CLUSTER", "MYID"] => format!("id-{}", ask.node),
        ["CLUSTER", "INFO"] => format!(
            "cluster_state:ok\r\ncluster_slots_ok:16384\r\ncluster_known_nodes:{}\r\n",
            ask.ports.len()
        ),
        _ => "OK".into(),
    })
}

#[test]
fn a_cluster_is_formed_with_every_slot_on_one_primary_and_each_replica_on_its_shard() {
    let rt = runtime();
    let (starter, mut deployment) = formed(&rt, "cluster:3:1", cluster);
    // The first node meets every other one.
    let port = |name: &str| deployment.node(name).unwrap().server.port().to_string();
    let met: Vec<String> = starter
        .heard("shard-1", &["CLUSTER", "MEET"])
        .into_iter()
        .map(|c| c[3].clone())
        .collect();
    let others = [
        "shard-2",
        "shard-3",
        "shard-1-replica-1",
        "shard-2-replica-1",
        "shard-3-replica-1",
    ];
    assert_eq!(met, others.map(port));
    // Every slot is added exactly once, on a primary, in one contiguous range per shard.
    let mut slots = Vec::new();
    for shard in ["shard-1", "shard-2", "shard-3"] {
        let added = starter.heard(shard, &["CLUSTER", "ADDSLOTS"]);
        assert_eq!(added.len(), 1, "{shard}");
        let range: Vec<u16> = added[0][2..].iter().map(|s| s.parse().unwrap()).collect();
        assert!(range.windows(2).all(|w| w[1] == w[0] + 1), "{shard}");
        slots.extend(range);
    }
    assert_eq!(slots, (0..16384).collect::<Vec<u16>>());
    // Each replica follows the primary of its own shard, and holds no slots.
    for shard in 1..=3 {
        let replica = format!("shard-{shard}-replica-1");
        let told = starter.heard(&replica, &["CLUSTER", "REPLICATE"]);
        assert_eq!(
            told,
            [["CLUSTER", "REPLICATE", &format!("id-shard-{shard}")]]
        );
        assert!(starter.heard(&replica, &["CLUSTER", "ADDSLOTS"]).is_empty());
    }
    rt.block_on(deployment.remove()).unwrap();
}
