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
