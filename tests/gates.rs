//! Gates and baselines on real runs: an injected slowdown is caught, two identical runs are not
//! flagged, and a threshold that is not met fails the run. One test, run in sequence, so the
//! runs it compares do not compete with each other for the CPU.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use common::{cachegate, only_run_dir, run_cli};
use serde_json::Value;

/// `cachegate run` of `matrix` into `dir/out`, against `baseline` if given.
fn run(
    dir: &Path,
    matrix: &str,
    out: &str,
    baseline: Option<&Path>,
) -> (Option<i32>, String, PathBuf) {
    let mut args: Vec<OsString> = ["run", "--no-progress", "--out", out, matrix]
        .iter()
        .map(OsString::from)
        .collect();
    if let Some(b) = baseline {
        args.extend(["--baseline".into(), b.into()]);
    }
    let (code, text) = run_cli(dir, &args);
    (code, text, only_run_dir(&dir.join(out)))
}

fn comparison(run_dir: &Path) -> Vec<Value> {
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    s["comparison"].as_array().cloned().unwrap_or_default()
}

const MATRIX: &str = r#"[matrix]
name = "gate"
repeat = 3
[axes]
server = ["valkey@9.1"]
[scenario]
kind = "cache-ops"
connections = 4
duration = "2s"
warmup = "200ms"
"#;

#[test]
fn slowdowns_are_caught_and_identical_runs_are_not_flagged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("base.toml"), MATRIX).unwrap();
    // The same cell with the same scenario parameters (so it is comparable) on a server that
    // fsyncs every write: the injected slowdown (measured 27,092 -> 1,245 ops/s here).
    std::fs::write(
        dir.path().join("slow.toml"),
        format!("{MATRIX}[server]\nextra = [\"appendonly yes\", \"appendfsync always\"]\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("gated.toml"),
        format!("{MATRIX}[gates]\nthroughput = \"> 100000000\"\nerrors = \"== 0\"\n"),
    )
    .unwrap();

    let (code, text, base) = run(dir.path(), "base.toml", "base", None);
    assert_eq!(code, Some(0), "{text}");

    let (code, text, same) = run(dir.path(), "base.toml", "same", Some(&base));
    let deltas = comparison(&same);
    assert_eq!(deltas.len(), 2, "throughput and p99 compared: {deltas:?}");
    assert!(
        deltas.iter().all(|d| d["status"] != "REGRESSION"),
        "identical runs are not flagged: {deltas:?}"
    );
    assert_eq!(code, Some(0), "{text}");

    let (code, text, slow) = run(dir.path(), "slow.toml", "slow", Some(&base));
    let deltas = comparison(&slow);
    let tput = deltas.iter().find(|d| d["metric"] == "throughput").unwrap();
    assert_eq!(tput["status"], "REGRESSION", "{tput}");
    assert!(tput["change"].as_f64().unwrap() < -0.5, "{tput}");
    assert_eq!(code, Some(1), "a regression fails the run: {text}");
    assert!(text.contains("REGRESSION"), "{text}");

    // `compare` says the same about the finished runs.
    let o = cachegate()
        .arg("compare")
        .arg(&base)
        .arg(&slow)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let o = cachegate()
        .arg("compare")
        .arg(&base)
        .arg(&same)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // A threshold the cell cannot meet fails the run; the one it meets passes.
    let (code, text, gated) = run(dir.path(), "gated.toml", "gated", None);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("GATE FAILED valkey@9.1/none: throughput"),
        "{text}"
    );
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(gated.join("summary.json")).unwrap())
            .unwrap();
    let errors_gate = s["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metric"] == "errors")
        .unwrap()
        .clone();
    assert_eq!(errors_gate["passed"], true);
}
