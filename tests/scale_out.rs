//! Runs split over jobs, on real servers: `run --shard K/N` and `merge` give the unsharded run's
//! cells and verdicts; several `run --generator I/G` processes load one real server together and
//! `merge` adds their histograms exactly.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cachegate::results::latency;
use cachegate::results::store::read_jsonl;
use cachegate::results::CellResult;
use common::{cachegate, output_text, run_cli};

/// 8 cells: two servers, two persistence modes, a short and a long variant.
const SHARDED: &str = r#"[matrix]
name = "sharded"
[axes]
server = ["redis@6.2", "redis@7.4"]
persistence = ["none", "rdb"]
[[axes.variant]]
label = "short"
duration = "1s"
[[axes.variant]]
label = "long"
duration = "3s"
[scenario]
kind = "cache-ops"
connections = 2
warmup = "0s"
"#;

fn run_dirs(out: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs
}

fn results(run: &Path) -> Vec<CellResult> {
    read_jsonl(&run.join("results.jsonl")).unwrap()
}

fn run_json(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap()
}

/// The cells `check` lists (one per line, id first) and its shard line.
fn checked(dir: &Path, shard: Option<&str>) -> (Vec<String>, String) {
    let mut args = vec!["check", "m.toml"];
    if let Some(s) = shard {
        args.extend(["--shard", s]);
    }
    let (code, text) = run_cli(dir, &args);
    assert_eq!(code, Some(0), "{text}");
    let cells = text
        .lines()
        .filter(|l| l.contains("  [sharded #"))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    let head = text.lines().next().unwrap_or_default().to_string();
    (cells, head)
}

#[test]
fn three_shards_merged_equal_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("m.toml"), SHARDED).unwrap();

    // The split: disjoint, covering, and balanced by expected duration (4 long cells of 3 s
    // and 4 short of 1 s, each +1 s to start its server: 8 s per shard).
    let (all, _) = checked(d, None);
    assert_eq!(all.len(), 8);
    let mut union = vec![];
    for k in 1..=3 {
        let (cells, head) = checked(d, Some(&format!("{k}/3")));
        assert!(head.contains("about 8 s"), "{head}");
        union.extend(cells);
    }
    let mut sorted = union.clone();
    sorted.sort();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(sorted, expected, "every cell in exactly one shard");

    let (code, text) = run_cli(d, &["run", "--no-progress", "--out", "whole", "m.toml"]);
    assert_eq!(code, Some(0), "{text}");
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let (code, text) = run_cli(
            d,
            &[
                "run",
                "--no-progress",
                "--out",
                "shards",
                "--shard",
                &shard,
                "m.toml",
            ],
        );
        assert_eq!(code, Some(0), "{text}");
        assert!(text.contains(&format!("shard {shard}")), "{text}");
    }
    let shards = run_dirs(&d.join("shards"));
    assert_eq!(shards.len(), 3);
    let mut args: Vec<String> = vec!["merge".into(), "--out".into(), "merged".into()];
    args.extend(shards.iter().map(|s| s.display().to_string()));
    let (code, text) = run_cli(d, &args);
    assert_eq!(code, Some(0), "{text}");

    let whole = results(&run_dirs(&d.join("whole"))[0]);
    let merged_dir = run_dirs(&d.join("merged"))[0].clone();
    let merged = results(&merged_dir);
    let key = |r: &CellResult| (r.cell_id.clone(), r.repeat, r.verdict, r.axes.clone());
    assert_eq!(
        merged.iter().map(key).collect::<Vec<_>>(),
        whole.iter().map(key).collect::<Vec<_>>(),
        "same cells, in the unsharded order, with the same verdicts"
    );
    let info = run_json(&merged_dir);
    assert_eq!(info["end"]["outcome"], "completed");
    assert_eq!(info["merged_from"].as_array().unwrap().len(), 3);
    assert_eq!(info["planned"].as_array().unwrap().len(), 8);
    // One report over the whole, and every cell's server log moved along with it.
    assert!(merged_dir.join("index.html").is_file());
    assert!(merged_dir.join("junit.xml").is_file());
    for r in &merged {
        let log = r.server.as_ref().unwrap().log.as_ref().unwrap();
        assert!(merged_dir.join(log).is_file(), "{log}");
        assert!(r.source_run.is_some());
    }

    // A missing shard: its cells did not run, the merged run failed (exit 3) and says which.
    let (code, text) = run_cli(
        d,
        &[
            "merge",
            "--out",
            "partial",
            shards[0].to_str().unwrap(),
            shards[1].to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("shard 3/3"), "{text}");
    // The same shard twice, and a shard with a whole run, are bad input.
    let s0 = shards[0].to_str().unwrap();
    let (code, text) = run_cli(d, &["merge", "--out", "twice", s0, s0]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("both part 1/3"), "{text}");
    let whole_dir = run_dirs(&d.join("whole"))[0].display().to_string();
    let (code, text) = run_cli(d, &["merge", "--out", "mixed", s0, &whole_dir]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("a whole run"), "{text}");
}

/// Every recorded value of a histogram (base64 V2) with its count.
fn recorded(histogram: &str) -> BTreeMap<u64, u64> {
    let h = latency::decode(histogram).unwrap();
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

#[test]
fn generators_load_one_server_together_and_merge_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let binary = common::provision("redis@7.4");
    let spec = common::spec("redis@7.4", "none");
    let mut server = rt
        .block_on(cachegate::server::ServerProcess::start(&spec, &binary))
        .unwrap();
    let port = server.port();
    let matrix = format!(
        "[matrix]\nname = \"gen\"\n[axes]\nserver = [\"redis@7.4\"]\n[target]\nserver = \
         \"127.0.0.1:{port}\"\n[scenario]\nkind = \"cache-ops\"\nconnections = 4\nduration = \
         \"2s\"\nwarmup = \"0s\"\nfill = 500\nkeyspace = 1000\n"
    );
    std::fs::write(d.join("m.toml"), matrix).unwrap();
    let barrier = d.join("go");
    let children: Vec<_> = (1..=3)
        .map(|g| {
            cachegate()
                .args(["run", "--no-progress", "--out", "gens"])
                .args(["--generator", &format!("{g}/3")])
                .args(["--start-at", &format!("file:{}", barrier.display())])
                .arg("m.toml")
                .current_dir(d)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Released together once all three have planned their run.
    let start = Instant::now();
    while !(d.join("gens").is_dir()
        && run_dirs(&d.join("gens"))
            .iter()
            .filter(|r| r.join("run.json").is_file())
            .count()
            == 3)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "generators did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(&barrier, "").unwrap();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    }
    let stats =
        cachegate::server::control::exchange(&server.endpoint(), &["INFO", "stats"]).unwrap();
    rt.block_on(server.stop(cachegate::server::StopKind::Graceful))
        .unwrap();

    let gens = run_dirs(&d.join("gens"));
    let parts: Vec<CellResult> = gens.iter().map(|g| results(g).remove(0)).collect();
    let mut args: Vec<String> = vec!["merge".into(), "--out".into(), "merged".into()];
    args.extend(gens.iter().map(|g| g.display().to_string()));
    let (code, text) = run_cli(d, &args);
    assert_eq!(code, Some(0), "{text}");
    let merged = results(&run_dirs(&d.join("merged"))[0]);
    assert_eq!(merged.len(), 1);
    let m = &merged[0];

    for op in &m.ops {
        let part_ops: Vec<_> = parts
            .iter()
            .map(|p| p.ops.iter().find(|o| o.op == op.op).unwrap())
            .collect();
        // The merged histogram is the union of every generator's samples, value by value.
        let mut union: BTreeMap<u64, u64> = BTreeMap::new();
        for o in &part_ops {
            for (v, n) in recorded(&o.histogram) {
                *union.entry(v).or_default() += n;
            }
        }
        assert_eq!(recorded(&op.histogram), union, "op {}", op.op);
        let total: u64 = union.values().sum();
        assert_eq!(op.latency.count, total);
        assert_eq!(op.ok, part_ops.iter().map(|o| o.ok).sum::<u64>());
        // Its p99 is the union's, not an average of the parts' p99s.
        let rank = (0.99 * total as f64).ceil() as u64;
        let mut seen = 0;
        let p99 = union
            .iter()
            .find(|(_, n)| {
                seen += **n;
                seen >= rank
            })
            .map(|(v, _)| *v)
            .unwrap();
        assert_eq!(op.latency.p99_us, p99 as f64 / 1000.0, "op {}", op.op);
        let summed: f64 = part_ops.iter().map(|o| o.throughput).sum();
        assert!((op.throughput - summed).abs() < 1e-6 * summed.max(1.0));
    }
    // They all loaded the one server: it processed at least every command they counted.
    let processed: u64 = String::from_utf8_lossy(&stats)
        .lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        processed >= m.counts.sent,
        "{processed} < {}",
        m.counts.sent
    );
    assert!(parts.iter().all(|p| p.counts.sent > 0));

    let g = m.generators.as_ref().unwrap();
    assert_eq!(g.merged, vec![1, 2, 3]);
    assert!(g.missing.is_empty());
    // Same machine: one barrier file, one clock.
    assert!(g.start_spread_ms < 1000.0, "{g:?}");
    assert!(g.clock_spread_ms.unwrap() < 50.0, "{g:?}");
    let server = m.server.as_ref().unwrap();
    assert_eq!(server.runtime, "external");
    assert!(server.version.starts_with("7.4"), "{}", server.version);
}

#[test]
fn scale_out_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("m.toml"), SHARDED).unwrap();
    let (code, text) = run_cli(d, &["run", "--generator", "1/2", "m.toml"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("[target] server"), "{text}");
    for bad in ["0/3", "4/3", "x"] {
        let (code, text) = run_cli(d, &["check", "--shard", bad, "m.toml"]);
        assert_eq!(code, Some(2), "{bad}: {text}");
    }
    let (code, text) = run_cli(d, &["run", "--start-at", "soon", "m.toml"]);
    assert_eq!(code, Some(2), "{text}");
    let whole = d.join("not-a-run");
    std::fs::create_dir(&whole).unwrap();
    let (code, text) = run_cli(d, &["merge", whole.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{text}");
}
