//! The scale-out examples (examples/scale-out/) are what their schedulers load, and the
//! commands in them are ones cachegate accepts: each shard count matches the scheduler's job
//! count, and `check --shard` on the examples' matrix gives every cell to exactly one shard.

mod common;

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/scale-out")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// `N` of the `--shard .../N` in a command.
fn shard_count(command: &str) -> u32 {
    let re = regex::Regex::new(r"--shard [^\n]*?/(\d+)").unwrap();
    re.captures(command).expect("a --shard K/N")[1]
        .parse()
        .unwrap()
}

/// Every cell of the examples' matrix is in exactly one of `n` shards.
fn shards_cover_the_matrix(n: u32) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cells = |shard: Option<String>| {
        let mut args = vec!["check".to_string(), "matrices/upgrade.toml".to_string()];
        args.extend(
            shard
                .map(|s| ["--shard".to_string(), s])
                .into_iter()
                .flatten(),
        );
        let (code, text) = common::run_cli(repo, &args);
        assert_eq!(code, Some(0), "{text}");
        let mut ids: Vec<String> = text
            .lines()
            .filter(|l| l.contains(" expect "))
            .map(String::from)
            .collect();
        ids.sort();
        ids
    };
    let all = cells(None);
    let mut union: Vec<String> = (1..=n)
        .flat_map(|k| cells(Some(format!("{k}/{n}"))))
        .collect();
    union.sort();
    assert_eq!(union, all);
}

#[test]
fn github_actions_shards_and_merge() {
    let wf: Value = serde_yaml_ng::from_str(&example("github-actions-shards.yml")).unwrap();
    let shard = &wf["jobs"]["shard"];
    let n = shard["strategy"]["matrix"]["shard"]
        .as_sequence()
        .unwrap()
        .len() as u32;
    let steps = shard["steps"].as_sequence().unwrap();
    let run = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|r| r.contains("cachegate run"))
        .unwrap();
    assert!(run.contains("--shard ${{ matrix.shard }}/"), "{run}");
    assert_eq!(shard_count(run), n);
    let merge = &wf["jobs"]["merge"];
    assert_eq!(merge["needs"].as_str(), Some("shard"));
    assert_eq!(merge["if"].as_str(), Some("always()"));
    assert!(merge["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .any(|r| r.contains("args=(merge parts/*/* --out reports)")));
    shards_cover_the_matrix(n);
}

#[test]
fn kubernetes_indexed_job_and_merge() {
    let docs: Vec<Value> =
        serde_yaml_ng::Deserializer::from_str(&example("kubernetes-indexed-job.yaml"))
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
    let job = |name: &str| {
        docs.iter()
            .find(|d| d["kind"] == "Job" && d["metadata"]["name"] == name)
            .unwrap()
    };
    let shards = job("cachegate-shards");
    assert_eq!(shards["spec"]["completionMode"].as_str(), Some("Indexed"));
    let n = shards["spec"]["completions"].as_u64().unwrap() as u32;
    let container = &shards["spec"]["template"]["spec"]["containers"][0];
    let command = container["args"][0].as_str().unwrap();
    assert!(
        command.contains("--shard $((JOB_COMPLETION_INDEX + 1))/"),
        "{command}"
    );
    assert_eq!(shard_count(command), n);
    let merge = job("cachegate-merge");
    let merge_cmd = merge["spec"]["template"]["spec"]["containers"][0]["args"][0]
        .as_str()
        .unwrap();
    assert!(
        merge_cmd.starts_with("cachegate merge /runs/shards/*"),
        "{merge_cmd}"
    );
    // Both Jobs mount the one volume the shards write and the merge reads.
    for j in [shards, merge] {
        assert_eq!(
            j["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "cachegate-runs"
        );
    }
    shards_cover_the_matrix(n);
}
