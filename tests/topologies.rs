//! Topologies with real nodes: a primary with replicas, three Sentinels over a primary and a
//! replica, and a three-primary Redis Cluster, each formed (replicas linked, Sentinels agreeing,
//! every slot served) on the process runtime and in containers; cache-ops routed across the
//! cluster's shards; and every node stopped afterwards.

mod common;

use std::collections::BTreeSet;

use cachegate::results::{CellResult, Verdict};

fn nodes(r: &CellResult) -> Vec<(String, String)> {
    r.server
        .as_ref()
        .and_then(|s| s.topology.as_ref())
        .map(|t| {
            t.nodes
                .iter()
                .map(|n| (n.name.clone(), n.role.clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn replica_sentinel_and_cluster_form_on_processes_and_containers() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text, results) = common::run_matrix(
        dir.path(),
        r#"
[matrix]
name = "topologies"
[axes]
server = ["redis@7.4"]
runtime = ["process", "container"]
topology = ["replica:2", "sentinel", "cluster:3"]
[scenario]
kind = "cache-ops"
connections = 4
duration = "1s"
warmup = "0s"
keyspace = 3000
"#,
    );
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(results.len(), 6, "{text}");
    for r in &results {
        assert_eq!(
            r.verdict,
            Verdict::Pass,
            "{}: {}",
            r.cell_id,
            r.verdict_reason
        );
        let total = r.total().expect("measured");
        assert_eq!(total.errors, 0, "{}", r.cell_id);
        assert!(total.ok > 100, "{}: {} ops", r.cell_id, total.ok);
        let topology = r.axes.get("topology").expect("topology recorded");
        let names: BTreeSet<String> = nodes(r).into_iter().map(|(n, _)| n).collect();
        let want: BTreeSet<String> = match topology.as_str() {
            "replica:2" => ["primary", "replica-1", "replica-2"]
                .map(String::from)
                .into(),
            "sentinel" => [
                "primary",
                "replica-1",
                "sentinel-1",
                "sentinel-2",
                "sentinel-3",
            ]
            .map(String::from)
            .into(),
            "cluster:3" => ["shard-1", "shard-2", "shard-3"].map(String::from).into(),
            other => panic!("unexpected topology {other}"),
        };
        assert_eq!(names, want, "{}", r.cell_id);
        // Every node's log is in the run folder.
        let run_dir = common::only_run_dir(&dir.path().join("out"));
        for n in &r.server.as_ref().unwrap().topology.as_ref().unwrap().nodes {
            let log = run_dir.join(n.log.as_ref().expect("a log per node"));
            assert!(log.exists(), "{}: {}", r.cell_id, log.display());
        }
        // The runtime on the axis is the one that ran every node.
        let runtime = r.axes["runtime"].clone();
        for n in &r.server.as_ref().unwrap().topology.as_ref().unwrap().nodes {
            assert_eq!(n.identity.runtime, runtime, "{}: {}", r.cell_id, n.name);
        }
    }
    assert!(
        common::leaked_servers().is_empty(),
        "{:?}",
        common::leaked_servers()
    );
}

const STACK: &str = r#"
[stacks."django-5.2"]
python = "3.11"
packages = ["django==5.2.*", "redis==5.2.*", "django-redis==5.4.*"]
"#;

fn outage_report(r: &CellResult) -> serde_json::Value {
    let v = serde_json::to_value(r).unwrap();
    v.get("check")
        .cloned()
        .unwrap_or_else(|| panic!("{}: no check in {v}", r.cell_id))
}

/// Django's built-in RedisCache with two LOCATIONs writes to the first and reads from the
/// others: with the replica killed, users see what reads from a dead replica give them.
#[test]
fn killing_the_replica_django_reads_from_shows_what_users_saw_and_the_resync() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text, results) = replica_fault(dir.path(), &["process"], "kill", "3s");
    assert_eq!(results.len(), 1, "{text}");
    let r = &results[0];
    assert_ne!(r.verdict, Verdict::Error, "{text}\n{}", r.verdict_reason);
    let check = outage_report(r);
    let report = &check;
    assert_eq!(report["fault"], "replica-1 killed", "{check}");
    // Every request that started while the replica was down is accounted for, by step.
    let during: u64 = report["during"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ok"].as_u64().unwrap() + s["errors"].as_u64().unwrap())
        .sum();
    assert!(during > 0, "no request while the replica was down: {check}");
    // Reads go to the replica only: with it dead, reads fail or find users logged out.
    let seen = &report["logged_in"]["during"];
    let bad = seen["failed"].as_u64().unwrap() + seen["logged_out"].as_u64().unwrap();
    assert!(bad > 0, "reads from a dead replica all worked? {check}");
    // After its restart the replica resynchronised and logins work again.
    assert!(report["caught_up_seconds"].as_f64().is_some(), "{check}");
    assert_eq!(report["recovered"], true, "{check}");
    assert!(code == Some(0) || code == Some(1), "{text}");
}

/// Three Sentinels over a primary and a replica, django-redis's Sentinel client in the app:
/// the primary is killed, the Sentinels promote the replica, and the report says when, which
/// node, how long logins failed and which sessions were lost.
#[test]
fn sentinel_failover_reports_promotion_time_and_sessions_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text, results) = common::run_matrix(
        dir.path(),
        &format!(
            r#"
[matrix]
name = "sentinel-failover"
[axes]
server = ["redis@7.4"]
topology = ["sentinel"]
stack = ["django-5.2"]
settings = ["django-redis-sentinel"]
{STACK}
[settings.django-redis-sentinel]
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
DJANGO_REDIS_CONNECTION_FACTORY = "django_redis.pool.SentinelConnectionFactory"
[settings.django-redis-sentinel.CACHES.default]
BACKEND = "django_redis.cache.RedisCache"
LOCATION = "redis://{{sentinel_service}}/0"
[settings.django-redis-sentinel.CACHES.default.OPTIONS]
CLIENT_CLASS = "django_redis.client.SentinelClient"
SENTINELS = "{{sentinels}}"
[scenario]
kind = "outage"
node = "primary"
fault = "kill"
users = 4
duration = "16s"
down_at = "3s"
down_for = "8s"
recovery_timeout = "8s"
logged_in_users = 5
"#
        ),
    );
    let r = common::find_cell(
        &results,
        "redis@7.4/none/sentinel/django-5.2/django-redis-sentinel",
    );
    assert_ne!(r.verdict, Verdict::Error, "{text}\n{}", r.verdict_reason);
    let check = outage_report(r);
    let report = &check;
    assert_eq!(report["fault"], "primary killed", "{check}");
    assert_eq!(report["promoted"], "replica-1", "{check}");
    let failover = report["failover_seconds"]
        .as_f64()
        .expect("a failover time");
    assert!(failover > 0.0 && failover < 8.0, "{check}");
    let lost = report["logged_in"]["sessions_lost"]
        .as_u64()
        .expect("sessions lost counted");
    assert!(lost <= 5, "{check}");
    // The promoted replica reports itself primary at the end. (What the old primary says
    // depends on whether a Sentinel has reconfigured it yet after its restart: it is recorded,
    // not asserted.)
    let nodes = nodes_at_end(r);
    assert_eq!(nodes["replica-1"], "primary", "{nodes:?}");
    assert!(nodes.contains_key("primary"), "{nodes:?}");
    assert!(code == Some(0) || code == Some(1), "{text}");
}

fn nodes_at_end(r: &CellResult) -> std::collections::BTreeMap<String, String> {
    r.server
        .as_ref()
        .unwrap()
        .topology
        .as_ref()
        .unwrap()
        .nodes
        .iter()
        .filter_map(|n| Some((n.name.clone(), n.role_at_end.clone()?)))
        .collect()
}

/// Everything of `run` the engine still has: containers, volumes, networks (by the run label).
fn docker_objects_of(run: &str) -> Vec<String> {
    let label = format!("label=cachegate.run={run}");
    let mut found = Vec::new();
    for what in [
        &["ps", "-a", "-q"][..],
        &["volume", "ls", "-q"][..],
        &["network", "ls", "-q"][..],
    ] {
        let out = std::process::Command::new("docker")
            .args(what)
            .args(["--filter", &label])
            .output()
            .expect("the docker CLI runs");
        assert!(out.status.success(), "{what:?}: {out:?}");
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| format!("{} {l}", what[0])),
        );
    }
    found
}

/// Processes whose parent is `parent` and whose command is a Redis server or Sentinel.
fn server_children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent && stat.contains("redis-server")).then_some(pid)
        })
        .collect()
}

/// Ctrl-C in the middle of a Sentinel cell (a primary, a replica, three Sentinels) stops every
/// node, on processes and in containers: no process, container, volume or network is left, the
/// cell is recorded as interrupted, and the exit code is 130.
#[test]
fn ctrl_c_mid_topology_cell_stops_every_node() {
    use std::time::{Duration, Instant};
    for runtime in ["process", "container"] {
        let dir = tempfile::tempdir().unwrap();
        let matrix = dir.path().join("m.toml");
        std::fs::write(
            &matrix,
            format!(
                r#"[matrix]
name = "interrupted"
[axes]
server = ["redis@7.4"]
runtime = ["{runtime}"]
topology = ["sentinel"]
[scenario]
kind = "cache-ops"
connections = 4
duration = "60s"
warmup = "0s"
"#
            ),
        )
        .unwrap();
        let out = dir.path().join("out");
        let child = common::cachegate()
            .args(["run", "--no-progress", "--out"])
            .arg(&out)
            .arg(&matrix)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The run folder's name is the run label of its containers.
        let start = Instant::now();
        let run_dir = loop {
            if let Some(Ok(e)) = std::fs::read_dir(&out).ok().and_then(|mut d| d.next()) {
                break e.path();
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no run folder");
            std::thread::sleep(Duration::from_millis(50));
        };
        let run = run_dir.file_name().unwrap().to_string_lossy().into_owned();
        // Wait until all five nodes are up, and a little into the load.
        let mut pids = Vec::new();
        loop {
            let up = if runtime == "process" {
                pids = server_children(child.id());
                pids.len()
            } else {
                docker_objects_of(&run)
                    .iter()
                    .filter(|o| o.starts_with("ps "))
                    .count()
            };
            if up >= 5 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{runtime}: {up} of 5 nodes after a minute"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(3));
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let output = child.wait_with_output().unwrap();
        let text = common::output_text(&output);
        assert_eq!(output.status.code(), Some(130), "{runtime}: {text}");
        for pid in &pids {
            assert!(
                !common::pid_alive(*pid),
                "{runtime}: node {pid} left running"
            );
        }
        assert!(
            docker_objects_of(&run).is_empty(),
            "{runtime}: left behind {:?}",
            docker_objects_of(&run)
        );
        let results =
            cachegate::results::store::read_jsonl(&run_dir.join("results.jsonl")).unwrap();
        assert_eq!(results.len(), 1, "{runtime}: {text}");
        assert_eq!(results[0].verdict, Verdict::Error, "{runtime}");
        let why = results[0].infra_error.as_deref().unwrap_or_default();
        assert!(why.contains("interrupted"), "{runtime}: {why}");
    }
}

/// A paused replica (SIGSTOP on processes, `docker pause` in containers) holds its connections
/// and answers nothing: Django's reads from it wait instead of failing fast, and once it runs on
/// it serves what it had. Both runtimes give the same account of it.
#[test]
fn pausing_the_replica_django_reads_from_is_reported_on_both_runtimes() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text, results) = replica_fault(dir.path(), BOTH_RUNTIMES, "pause", "2s");
    assert!(code == Some(0) || code == Some(1), "{text}");
    assert_eq!(results.len(), 2, "{text}");
    for r in &results {
        assert_ne!(
            r.verdict,
            Verdict::Error,
            "{}: {}",
            r.cell_id,
            r.verdict_reason
        );
        let report = outage_report(r);
        assert_eq!(report["fault"], "replica-1 paused", "{report}");
        // Paused, not killed: the replica was never restarted, so it is the same server.
        let replica = nodes(r)
            .into_iter()
            .find(|(n, _)| n == "replica-1")
            .expect("the replica is listed");
        assert_eq!(replica.1, "replica", "{}", r.cell_id);
        assert_eq!(report["recovered"], true, "{report}");
        // Reads that reached the frozen replica waited for it (down_for is 2 s) rather than
        // fail; one sent just before the pause counts as "before".
        let waited = ["before", "during"]
            .iter()
            .map(|p| report["logged_in"][p]["max_latency_ms"].as_f64().unwrap())
            .fold(0.0, f64::max);
        assert!(
            waited >= 1000.0,
            "no read waited for the paused replica: {report}"
        );
        // It ran on with what it had: the logged-in users kept reading as themselves.
        let after = &report["logged_in"]["after"];
        assert!(after["ok"].as_u64().unwrap() > 0, "{report}");
        assert_eq!(report["logged_in"]["sessions_lost"], 0, "{report}");
    }
}

/// A replica cut off from its primary (pointed at a port that never answers) stays a read-only
/// replica and serves what it had: sessions written to the primary meanwhile are not on it, so
/// Django reading from it cannot find them; pointed back, it catches up. The report says how far
/// behind it fell and how long catching up took, on both runtimes.
#[test]
fn a_lagging_replica_serves_stale_sessions_and_catches_up_on_both_runtimes() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text, results) = replica_fault(dir.path(), BOTH_RUNTIMES, "lag", "3s");
    assert!(code == Some(0) || code == Some(1), "{text}");
    assert_eq!(results.len(), 2, "{text}");
    for r in &results {
        assert_ne!(
            r.verdict,
            Verdict::Error,
            "{}: {}",
            r.cell_id,
            r.verdict_reason
        );
        let report = outage_report(r);
        assert_eq!(
            report["fault"], "replica-1 cut off from the primary",
            "{report}"
        );
        // Still a replica all along (detach would have made it a primary for the fault).
        assert_eq!(
            nodes_at_end(r).get("replica-1").map(String::as_str),
            Some("replica"),
            "{report}"
        );
        // The flow kept writing sessions to the primary: the replica fell behind by them...
        let behind = report["replica_behind_bytes"].as_u64();
        assert!(behind.is_some_and(|b| b > 0), "not behind? {report}");
        // ...and requests that needed them from the replica failed while it lagged.
        let failed: u64 = report["during"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["errors"].as_u64().unwrap())
            .sum();
        assert!(
            failed > 0,
            "nothing failed against a stale replica? {report}"
        );
        // What it had, it kept serving: users logged in before read as themselves throughout.
        assert_eq!(report["logged_in"]["sessions_lost"], 0, "{report}");
        assert_eq!(report["logged_in"]["during"]["failed"], 0, "{report}");
        // Pointed back, it caught up.
        let caught_up = report["caught_up_seconds"].as_f64();
        assert!(caught_up.is_some_and(|s| s < 5.0), "{report}");
        assert_eq!(report["recovered"], true, "{report}");
    }
}

const BOTH_RUNTIMES: &[&str] = &["process", "container"];

/// An outage of `replica-1`, the replica Django's multi-LOCATION cache reads from, on each of
/// `runtimes`.
fn replica_fault(
    dir: &std::path::Path,
    runtimes: &[&str],
    fault: &str,
    down_for: &str,
) -> (Option<i32>, String, Vec<CellResult>) {
    common::run_matrix(
        dir,
        &format!(
            r#"
[matrix]
name = "replica-{fault}"
[axes]
server = ["redis@7.4"]
runtime = {runtimes:?}
topology = ["replica:1"]
stack = ["django-5.2"]
settings = ["read-from-replica"]
{STACK}
[settings.read-from-replica]
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
[settings.read-from-replica.CACHES.default]
BACKEND = "django.core.cache.backends.redis.RedisCache"
LOCATION = ["{{primary}}", "{{replica}}"]
[scenario]
kind = "outage"
node = "replica-1"
fault = "{fault}"
users = 4
duration = "9s"
down_at = "3s"
down_for = "{down_for}"
logged_in_users = 4
"#
        ),
    )
}

/// Durability across a failover: the primary is killed under writers that wait for their
/// replica (WAIT 1), and every acknowledged write is read back from the node that takes over:
/// replica-1 promoted by the harness (replica:1, processes and containers) or by the Sentinels.
/// A standalone cell has no one to fail over to: it is an ERROR with the reason.
#[test]
fn writes_acknowledged_with_wait_survive_a_failover() {
    let dir = tempfile::tempdir().unwrap();
    let (_, text, results) = common::run_matrix(
        dir.path(),
        r#"
[matrix]
name = "failover-wait"
[axes]
server = ["redis@7.4"]
runtime = ["process", "container"]
topology = ["standalone", "replica:1", "sentinel"]
[[exclude]]
runtime = "container"
topology = "standalone"
[[exclude]]
runtime = "container"
topology = "sentinel"
[scenario]
kind = "durability"
failover = true
wait_replicas = 1
restart = "kill"
connections = 4
duration = "2s"
"#,
    );
    for id in [
        "redis@7.4/none/replica:1",
        "redis@7.4/none/container/replica:1",
        "redis@7.4/none/sentinel",
    ] {
        let r = common::find_cell(&results, id);
        assert_eq!(
            r.verdict,
            Verdict::Pass,
            "{id}: {}\n{text}",
            r.verdict_reason
        );
        let p = r.check.as_ref().and_then(|c| c.persistence()).unwrap();
        assert!(p.before >= 100, "{id}: enough acknowledged writes: {p:?}");
        assert_eq!(
            p.lost, 0,
            "{id}: WAIT 1 of 1 keeps every acknowledged write: {p:?}"
        );
        assert!(p.matches, "{id}: {p:?}");
        let to = p
            .failover
            .as_deref()
            .expect("where the writes were read back");
        assert!(to.contains("replica-1"), "{id}: {to}");
        let how = if id.ends_with("sentinel") {
            "Sentinels"
        } else {
            "REPLICAOF NO ONE"
        };
        assert!(to.contains(how), "{id}: {to}");
    }
    let standalone = common::find_cell(&results, "redis@7.4/none");
    // Nothing was measured: the cell could not run (ERROR), it did not lose writes (FAIL).
    assert_eq!(standalone.verdict, Verdict::Error, "{text}");
    assert!(
        standalone
            .verdict_reason
            .contains("`failover` needs a primary with replicas"),
        "{}",
        standalone.verdict_reason
    );
}
