//! The `cachegate` binary end to end: input errors, a real matrix run, re-rendering, Ctrl-C.

mod common;

use common::{cachegate, only_run_dir, output_text as text};

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cachegate::results::store::read_jsonl;
use cachegate::results::Verdict;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const GOOD: &str = r#"[matrix]
name = "t"
[axes]
server = ["redis@6.2"]
[scenario]
kind = "cache-ops"
connections = 2
ops = 500
warmup = "0s"
"#;

/// Malformed input exits 2 and names file, line and field.
#[test]
fn check_rejects_bad_files_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown.toml",
            GOOD.replace("connections = 2", "conections = 2"),
            ":7:1",
            "unknown field `conections`",
        ),
        (
            "type.toml",
            GOOD.replace("name = \"t\"", "name = \"t\"\nrepeat = \"three\""),
            ":3:10",
            "invalid type",
        ),
        (
            "version.toml",
            GOOD.replace("redis@6.2", "redis@seven"),
            ":4:10",
            "field `axes.server`: bad version `seven`",
        ),
        (
            "family.toml",
            GOOD.replace("redis@6.2", "keydb@6"),
            ":4:10",
            "field `axes.server`: unknown server family `keydb`",
        ),
        (
            "persist.toml",
            GOOD.replace(
                "[scenario]",
                "persistence = [\"aof-sometimes\"]\n[scenario]",
            ),
            ":5:15",
            "field `axes.persistence`: bad persistence `aof-sometimes`",
        ),
        (
            "variant.toml",
            GOOD.to_string() + "[[axes.variant]]\npipeline = 4\n",
            ":10:1",
            "field `label` missing",
        ),
        (
            "use.toml",
            GOOD.replace("kind = \"cache-ops\"", "use = \"nope.toml\""),
            ":6:7",
            "field `use`: scenario file `nope.toml` not found",
        ),
        (
            "both.toml",
            GOOD.replace("ops = 500", "ops = 500\nduration = \"1s\""),
            ":5:1",
            "set either `duration` or `ops`",
        ),
        (
            "vpipe.toml",
            GOOD.to_string() + "[[axes.variant]]\nlabel = \"x\"\npipeline = 0\n",
            ":10:1",
            "variant `x`: field `pipeline` must be at least 1",
        ),
        (
            "dur.toml",
            GOOD.replace("warmup = \"0s\"", "warmup = \"soon\""),
            ":9:10",
            "field `scenario.warmup`: bad duration `soon`",
        ),
        (
            "threads.toml",
            GOOD.to_string() + "[target]\nthreads = 0\n",
            ":11:11",
            "field `target.threads`: invalid value: integer `0`, expected a nonzero u32",
        ),
    ];
    for (name, body, at, field) in cases {
        let path = write(dir.path(), name, &body);
        let out = cachegate().arg("check").arg(&path).output().unwrap();
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {msg}");
        eprintln!("{name}: {msg}");
        assert!(
            msg.contains(&format!("{}{at}", path.display())),
            "{name}: wanted {at} in: {msg}"
        );
        assert!(msg.contains(field), "{name}: wanted `{field}` in: {msg}");
    }
    let out = cachegate()
        .args(["check", "/no/such/matrix.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    let good = write(dir.path(), "good.toml", GOOD);
    let out = cachegate().arg("check").arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("redis@6.2/none"), "{}", text(&out));
}

/// A real two-version run with one unrunnable cell and one expected failure: every cell lands in
/// results.jsonl and results.csv, the broken one with its cause, and the exit code is 3.
#[test]
fn run_records_every_cell_and_goes_on_past_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let matrix = write(
        dir.path(),
        "m.toml",
        r#"[matrix]
name = "cli"
[axes]
server = ["redis@6.2", "valkey@9.1", "redis@7.2"]
[server_paths]
"redis@7.2" = "/nonexistent/redis-server"
[scenario]
kind = "cache-ops"
connections = 4
ops = 2000
warmup = "100ms"
[[axes.variant]]
label = "p1"
[[axes.variant]]
label = "p8"
pipeline = 8
[[exclude]]
server = "valkey@9"
variant = "p1"
[[expect]]
when = { server = "valkey@9.1" }
verdict = "fail"
reason = "checks that XPASS is reported"
"#,
    );
    let out = cachegate()
        .args(["run", "--out"])
        .arg(dir.path().join("out"))
        .arg(&matrix)
        .output()
        .unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(3), "{msg}");

    let run_dir = only_run_dir(&dir.path().join("out"));
    let results = read_jsonl(&run_dir.join("results.jsonl")).unwrap();
    let ids: Vec<&str> = results.iter().map(|r| r.cell_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "redis@6.2/none/p1",
            "redis@6.2/none/p8",
            "valkey@9.1/none/p8",
            "redis@7.2/none/p1",
            "redis@7.2/none/p8"
        ]
    );
    for r in &results[..2] {
        assert_eq!(
            r.verdict,
            Verdict::Pass,
            "{}: {}",
            r.cell_id,
            r.verdict_reason
        );
        assert_eq!(r.counts.ok, 2000);
        assert_eq!(r.server.as_ref().unwrap().version, "6.2.14");
        assert!(run_dir
            .join(r.server.as_ref().unwrap().log.as_ref().unwrap())
            .exists());
    }
    assert_eq!(results[1].scenario["pipeline"], 8);
    assert_eq!(
        results[2].verdict,
        Verdict::Xpass,
        "expected to fail but passed"
    );
    for r in &results[3..] {
        assert_eq!(r.verdict, Verdict::Error);
        let cause = r.infra_error.as_deref().unwrap();
        assert!(cause.contains("/nonexistent/redis-server"), "{cause}");
    }
    assert!(msg.contains("XPASS") && msg.contains("ERROR"), "{msg}");

    // CSV: one row per op per cell (the broken cells get one row).
    let csv = std::fs::read_to_string(run_dir.join("results.csv")).unwrap();
    assert!(csv.starts_with("run_id,matrix,cell_id,"));
    assert_eq!(csv.lines().filter(|l| l.contains(",all,")).count(), 5);
    let info = std::fs::read_to_string(run_dir.join("run.json")).unwrap();
    assert!(info.contains("\"cells\": 5"), "{info}");

    // `report` re-renders the CSV from results.jsonl alone.
    std::fs::remove_file(run_dir.join("results.csv")).unwrap();
    let out = cachegate().arg("report").arg(&run_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(run_dir.join("results.csv")).unwrap(),
        csv
    );
    assert!(
        common::leaked_servers().is_empty(),
        "{:?}",
        common::leaked_servers()
    );
}

#[test]
fn failing_cell_exits_1_and_filter_picks_cells() {
    let dir = tempfile::tempdir().unwrap();
    let body = GOOD.replace(
        "server = [\"redis@6.2\"]",
        "server = [\"redis@6.2\", \"valkey@8.1\"]",
    ) + "[server]\nmaxmemory = \"1mb\"\nmaxmemory_policy = \"noeviction\"\n";
    let body = body.replace(
        "warmup = \"0s\"",
        "warmup = \"0s\"\nvalue_size = 8192\nkeyspace = 100000\nmix = { set = 1 }",
    );
    let matrix = write(dir.path(), "m.toml", &body);
    let out = cachegate()
        .args(["run", "--filter", "server=valkey@8", "--out"])
        .arg(dir.path())
        .arg(&matrix)
        .output()
        .unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("valkey@8.1/none") && !msg.contains("redis@6.2/none"),
        "{msg}"
    );
    assert!(
        msg.contains("server error OOM"),
        "the failure names its cause: {msg}"
    );
}

/// Ctrl-C stops the running cell, records it, stops its server and exits 130.
#[test]
fn ctrl_c_stops_everything_and_keeps_results() {
    let dir = tempfile::tempdir().unwrap();
    let body = GOOD.replace("ops = 500", "duration = \"60s\"").replace(
        "server = [\"redis@6.2\"]",
        "server = [\"redis@6.2\", \"redis@7.4\"]",
    );
    let matrix = write(dir.path(), "m.toml", &body);
    let child = cachegate()
        .args(["run", "--out"])
        .arg(dir.path().join("out"))
        .arg(&matrix)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first cell's server is up (its log appears in the process list via its config).
    let start = Instant::now();
    let server_pid = loop {
        let mine = server_children(child.id());
        if let Some(pid) = mine.first() {
            break *pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no server started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(
        !common::pid_alive(server_pid),
        "server {server_pid} left running"
    );

    let run_dir = only_run_dir(&dir.path().join("out"));
    let results = read_jsonl(&run_dir.join("results.jsonl")).unwrap();
    assert_eq!(
        results.len(),
        1,
        "the interrupted cell is recorded, the next never starts"
    );
    assert_eq!(results[0].verdict, Verdict::Error);
    assert!(results[0]
        .infra_error
        .as_deref()
        .unwrap()
        .contains("interrupted"));
    assert!(
        results[0].counts.ok > 0,
        "what was measured before Ctrl-C is kept"
    );
}

fn server_children(parent: u32) -> Vec<u32> {
    let mut pids = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let ppid: u32 = after_name
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid == parent && stat.contains("redis-server") {
            pids.push(pid);
        }
    }
    pids
}
