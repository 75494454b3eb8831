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
            "external-address.toml",
            format!("{GOOD}[target]\nserver = \"10.0.0.1:6379\"\n"),
            ":11:1",
            "field `target.server` = `10.0.0.1:6379`: cachegate only sends traffic to 127.0.0.1",
        ),
        (
            "external-topology.toml",
            format!("{GOOD}[target]\nserver = \"127.0.0.1:6379\"\n")
                .replace("[\"redis@6.2\"]", "[\"redis@6.2\"]\ntopology = [\"replica:1\"]"),
            ":12:1",
            "field `target.server`: cell redis@6.2/none/replica:1: topology `replica:1` starts several nodes",
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
            "noserver.toml",
            GOOD.replace("\"redis@6.2\"", "\"redis@6.2\", \"none\""),
            ":4:1",
            "field `axes.server`: `none` runs no cache server, but scenario kind `cache-ops`",
        ),
        (
            "memcached-rdb.toml",
            GOOD.replace(
                "\"redis@6.2\"]",
                "\"memcached@1.6\"]\npersistence = [\"rdb\"]",
            ),
            ":5:1",
            "field `axes.persistence`: memcached@1.6: memcached keeps everything in memory",
        ),
        (
            "memcached-pass.toml",
            GOOD.replace("\"redis@6.2\"]", "\"memcached@1.6\"]")
                .replace("[scenario]", "[server]\nrequirepass = \"x\"\n[scenario]"),
            ":6:1",
            "field `server.requirepass`: memcached@1.6: memcached's text protocol has no password",
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

/// What `run` would reject or misread, `check` rejects: exit 2 naming file:line, the field and
/// the bound or reason. Huge counts are refused before anything is allocated for them.
#[test]
fn check_rejects_what_run_would_reject_or_misread() {
    let dir = tempfile::tempdir().unwrap();
    let with = |from: &str, to: &str| GOOD.replace(from, to);
    let cases = [
        (with("name = \"t\"", "name = \"t\"\nrepeat = 4000000000"), ":3:1", "between 1 and 1000"),
        (with("name = \"t\"", "name = \"t\"\nrepeat = 0"), ":3:1", "`matrix.repeat` = 0"),
        (with("connections = 2", "connections = 1000000000"), ":7:1", "limit of 50000"),
        (with("ops = 500", "duration = \"0s\""), ":8:1", "`duration` must be above 0s"),
        (with("ops = 500", "duration = \"500000000y\""), ":8:1", "limit of 7days"),
        (with("ops = 500", "ops = 500\nop_timeout = \"0s\""), ":9:1", "`op_timeout` must be above 0s"),
        (with("[axes]", "[axes]\npersistence = [\"rdb:0/0\"]"), ":4:15", "needs at least 1 second"),
        (with("[axes]", "[axes]\npersistence = [\"rdb+aof-everysec+rdb\"]"), ":4:15", "rdb given twice"),
        (with("[axes]", "[axes]\npersistence = []"), ":4:1", "`axes.persistence` is empty"),
        (with("redis@6.2\"]", "redis@6.2\", \"redis@6.2\"]"), ":4:1", "lists `redis@6.2` twice"),
        (GOOD.to_string() + "[target]\nurl = \"not a url\"\n", ":11:1", "not a URL"),
        (GOOD.to_string() + "[target]\nurl = \"http://10.0.0.1/\"\n", ":11:1", "only sends traffic to 127.0.0.1"),
        // Issue 16.3: expectations and gates that could never apply.
        (
            GOOD.to_string() + "[[expect]]\nwhen = { persistence = \"aof-always\" }\nverdict = \"fail\"\n",
            ":11:10",
            "`aof-always` is not on the matrix's persistence axis or in an [[include]] (none)",
        ),
        (
            GOOD.to_string() + "[[expect]]\nwhen = { variant = \"p16\" }\nverdict = \"fail\"\n",
            ":11:10",
            "`p16` is not on the matrix's variant axis or in an [[include]] (which is empty)",
        ),
        (
            GOOD.to_string() + "[[expect]]\nwhen = { server = \"redis@6\" }\nverdict = \"pass\"\nsignature = \"OOM\"\n",
            ":13:1",
            "only applies to `verdict = \"fail\"`",
        ),
        (GOOD.to_string() + "[gates]\n\"gett.p99\" = \"< 2ms\"\n", ":11:2", "gate `gett.p99`: no cell"),
        (GOOD.to_string() + "[gates]\nlost = \"== 0\"\n", ":11:1", "cache-ops reports no verification metric"),
    ];
    for (i, (body, line, message)) in cases.iter().enumerate() {
        let name = format!("case{i}.toml");
        let path = write(dir.path(), &name, body);
        for command in ["check", "run"] {
            let out = cachegate()
                .arg(command)
                .arg(&path)
                .current_dir(dir.path())
                .output()
                .unwrap();
            let msg = text(&out);
            assert_eq!(out.status.code(), Some(2), "{command} {name}: {msg}");
            assert!(
                msg.contains(&format!("{name}{line}: ")),
                "{command} {name}: {msg}"
            );
            assert!(msg.contains(message), "{command} {name}: {msg}");
        }
    }
    assert!(
        !dir.path().join("reports").exists(),
        "no run folder for rejected input"
    );
    // Little memory for the huge counts: the largest child's peak RSS (ru_maxrss, KiB).
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    assert!(
        usage.ru_maxrss < 200 * 1024,
        "peak RSS {} KiB",
        usage.ru_maxrss
    );
}

/// Cells whose ids slug to the same file name keep separate logs.
#[test]
fn log_names_stay_unique_when_cell_ids_slug_alike() {
    let dir = tempfile::tempdir().unwrap();
    let body = GOOD.replace(
        "[scenario]",
        "variant = [{ label = \"α\" }, { label = \"β\" }]\n[scenario]",
    );
    let matrix = write(dir.path(), "m.toml", &body);
    let out = cachegate()
        .args(["run", "--no-progress", "--out"])
        .arg(dir.path().join("out"))
        .arg(&matrix)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run_dir = only_run_dir(&dir.path().join("out"));
    let results = read_jsonl(&run_dir.join("results.jsonl")).unwrap();
    let logs: Vec<_> = results
        .iter()
        .map(|r| r.server.as_ref().unwrap().log.clone().unwrap())
        .collect();
    assert_eq!(logs.len(), 2);
    assert_ne!(logs[0], logs[1]);
    for log in &logs {
        assert!(run_dir.join(log).is_file(), "{log} written");
    }
}

/// A --filter that selects nothing is bad input: it says so, lists the axes' values, and creates
/// no run folder.
#[test]
fn filter_matching_no_cell_creates_nothing_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let matrix = write(dir.path(), "m.toml", GOOD);
    let out_dir = dir.path().join("out");
    let run = ["run", "--filter", "server=valkey@8", "--out"].map(std::ffi::OsStr::new);
    let check = ["check", "--filter", "server=valkey@8"].map(std::ffi::OsStr::new);
    for args in [
        &[&run[..], &[out_dir.as_os_str()]].concat(),
        &check[..].to_vec(),
    ] {
        let out = cachegate().args(args).arg(&matrix).output().unwrap();
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {msg}");
        assert!(msg.contains("matched none of the 1 cells"), "{msg}");
        assert!(msg.contains("server: redis@6.2"), "{msg}");
        assert!(msg.contains("persistence: none"), "{msg}");
        assert!(!out_dir.exists(), "no folder for an empty run");
    }
}

/// Start `cachegate run` on a 4-cell matrix of 60 s cells and wait until the first cell's server
/// is up. Returns the child, the server's PID and the output folder.
fn start_long_run(dir: &Path) -> (std::process::Child, u32, PathBuf) {
    let body = GOOD.replace("ops = 500", "duration = \"60s\"").replace(
        "server = [\"redis@6.2\"]",
        "server = [\"redis@6.2\", \"redis@7.4\"]\npersistence = [\"none\", \"rdb\"]",
    );
    let matrix = write(dir, "m.toml", &body);
    let out = dir.join("out");
    let child = cachegate()
        .args(["run", "--no-progress", "--out"])
        .arg(&out)
        .arg(&matrix)
        .env("TMPDIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let server_pid = loop {
        if let Some(pid) = server_children(child.id()).first() {
            break *pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no server started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(500));
    (child, server_pid, out)
}

/// The harness's temp folders (servers' and the app's) left in `dir`.
fn temp_folders(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cachegate-"))
        .collect()
}

/// What a run stopped by `signal` must leave: every output, the running cell recorded as
/// interrupted by that signal, the other cells listed as not run, the end recorded, and the real
/// exit code everywhere.
fn assert_interrupted_run_folder(run_dir: &Path, signal: &str, code: i32) {
    for f in [
        "results.jsonl",
        "results.csv",
        "run.json",
        "index.html",
        "summary.json",
        "junit.xml",
        "summary.md",
    ] {
        assert!(run_dir.join(f).exists(), "{f} missing");
    }
    let results = read_jsonl(&run_dir.join("results.jsonl")).unwrap();
    assert_eq!(results.len(), 1, "the interrupted cell is recorded");
    assert_eq!(results[0].verdict, Verdict::Error);
    let why = results[0].infra_error.as_deref().unwrap();
    assert!(why.contains(&format!("interrupted ({signal})")), "{why}");

    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["end"]["outcome"], "interrupted");
    assert_eq!(info["end"]["signal"], signal);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["exit_code"], code);
    assert_eq!(summary["complete"], false);
    assert_eq!(summary["not_run"].as_array().unwrap().len(), 3);
    let md = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    assert!(md.contains(&format!("exit code {code}")), "{md}");
    assert!(md.contains(&format!("interrupted by {signal}")), "{md}");
    let junit = std::fs::read_to_string(run_dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"tests="4" skipped="3""#),
        "all 4 planned cells in JUnit, 3 skipped: {junit}"
    );
    let html = std::fs::read_to_string(run_dir.join("index.html")).unwrap();
    assert!(html.contains("Incomplete run"));

    // `report` on the folder says the run is incomplete and keeps the real exit code.
    let (_, text) = common::run_cli(run_dir, &["report", "."]);
    assert!(
        text.contains(&format!("run incomplete: interrupted by {signal}")),
        "{text}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(
        summary["exit_code"], code,
        "re-rendering keeps the exit code"
    );
}

/// SIGTERM (what CI sends on cancel) and SIGHUP stop a run like Ctrl-C: the running cell is
/// recorded, the report written, nothing left running, no temp folder left, exit 128 + signal.
#[test]
fn sigterm_and_sighup_mid_cell_leave_a_complete_honest_run_folder() {
    for (signal, number) in [("SIGTERM", libc::SIGTERM), ("SIGHUP", libc::SIGHUP)] {
        let dir = tempfile::tempdir().unwrap();
        let (child, server_pid, out) = start_long_run(dir.path());
        unsafe { libc::kill(child.id() as i32, number) };
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(128 + number),
            "{}",
            text(&output)
        );
        assert!(
            !common::pid_alive(server_pid),
            "server {server_pid} left running"
        );
        assert_eq!(temp_folders(dir.path()), Vec::<String>::new());
        let results = read_jsonl(&only_run_dir(&out).join("results.jsonl")).unwrap();
        assert!(results[0].counts.ok > 0, "what was measured is kept");
        assert_interrupted_run_folder(&only_run_dir(&out), signal, 128 + number);
    }
}

/// A second signal abandons the running cell at once but still records it and writes the report.
#[test]
fn second_signal_still_records_the_cell_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let (child, server_pid, out) = start_long_run(dir.path());
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    // Signals of one kind do not queue; a different second signal arrives for sure.
    std::thread::sleep(Duration::from_millis(20));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", text(&output));
    assert!(
        !common::pid_alive(server_pid),
        "server {server_pid} left running"
    );
    assert_eq!(temp_folders(dir.path()), Vec::<String>::new());
    assert_interrupted_run_folder(&only_run_dir(&out), "SIGINT", 130);
    let results = read_jsonl(&only_run_dir(&out).join("results.jsonl")).unwrap();
    let why = results[0].infra_error.as_deref().unwrap();
    assert!(why.contains("abandoned at once"), "{why}");
}

/// Two runs of one matrix started together into one --out get a folder each.
#[test]
fn concurrent_runs_get_their_own_folders() {
    let dir = tempfile::tempdir().unwrap();
    let matrix = write(dir.path(), "m.toml", GOOD);
    let runs: Vec<_> = (0..3)
        .map(|_| {
            cachegate()
                .args(["run", "--no-progress", "--out", "out"])
                .arg(&matrix)
                .current_dir(dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let folders: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(folders.len(), 3, "{folders:?}");
    for f in folders {
        let results = read_jsonl(&f.join("results.jsonl")).unwrap();
        assert_eq!(results.len(), 1, "{} holds only its own cell", f.display());
    }
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

/// A server's private folder is 0700 with its config (which may hold a password) 0600. A killed
/// harness cannot remove it; the next run's start does, and leaves a live harness's alone.
#[test]
fn temp_folders_of_a_killed_run_are_private_and_swept_by_the_next_run() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, server_pid, _) = start_long_run(dir.path());
    let left = temp_folders(dir.path());
    assert_eq!(left.len(), 1, "{left:?}");
    let folder = dir.path().join(&left[0]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&folder), 0o700);
    assert_eq!(mode(&folder.join("server.conf")), 0o600);

    child.kill().unwrap();
    child.wait().unwrap();
    let start = Instant::now();
    while common::pid_alive(server_pid) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "server outlived the harness"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        folder.exists(),
        "SIGKILL runs no destructor: the folder stays"
    );
    // A folder whose owner is alive (this test process) is not the next run's to remove.
    let me = cachegate::scratch::owner_id(std::process::id()).unwrap();
    let live = format!("cachegate-server-{}-live01", me.replace(':', "."));
    std::fs::create_dir(dir.path().join(&live)).unwrap();

    let matrix = write(dir.path(), "short.toml", GOOD);
    let out = cachegate()
        .args(["run", "--no-progress", "--out"])
        .arg(dir.path().join("out2"))
        .arg(&matrix)
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert!(
        msg.contains("removed 1 temp folder(s) that killed runs left"),
        "{msg}"
    );
    assert!(!folder.exists(), "{msg}");
    assert_eq!(temp_folders(dir.path()), vec![live]);
}

/// `--out` on a read-only file system: a clear error naming the folder, the OS error once,
/// exit 3 (README: output unwritable), and nothing written anywhere else.
#[test]
fn unwritable_out_folder_is_a_clear_error_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.toml", GOOD);
    let readonly = dir.path().join("readonly");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&readonly).unwrap();
    std::fs::create_dir(&tmp).unwrap();
    // A read-only mount in a private mount namespace: gone when the command ends, and read-only
    // even for root (a chmod is not).
    let out = std::process::Command::new("unshare")
        .args(["--map-root-user", "--mount", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o ro tmpfs "$1" && exec "$2" run --no-progress --out "$1/out" m.toml"#)
        .arg("sh")
        .arg(&readonly)
        .arg(env!("CARGO_BIN_EXE_cachegate"))
        .env("TMPDIR", &tmp)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(3), "{msg}");
    assert!(
        msg.contains(&format!("{}/out", readonly.display())),
        "{msg}"
    );
    assert!(msg.contains("Read-only file system"), "{msg}");
    assert_eq!(msg.matches("(os error").count(), 1, "{msg}");
    let mut entries: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["m.toml", "readonly", "tmp"]);
    assert_eq!(std::fs::read_dir(&readonly).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

/// Issue 14.7: a matrix kept outside the project runs a bundled scenario by name.
#[test]
fn a_matrix_outside_the_project_runs_a_bundled_scenario_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let body = GOOD.replace("kind = \"cache-ops\"", "use = \"cache-ops\"");
    let (code, text, results) = common::run_matrix(dir.path(), &body);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].scenario_kind, "cache-ops");
    assert_eq!(
        results[0].counts.ok, 500,
        "the matrix's `ops` overrides the bundled file"
    );
    // The bundled file's values are what ran where the matrix says nothing (its mix).
    assert_eq!(
        results[0].scenario["mix"]["get"], 80,
        "{}",
        results[0].scenario
    );
}

/// `run --resume` after a SIGKILL that also cut the results file mid-append: the run is
/// completed in its own folder with exactly the cells it lacked (none twice, none missing), and
/// a matrix changed since, or a completed run, is refused with the reason (exit 2).
#[test]
fn resume_after_sigkill_completes_the_run_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let body = GOOD.replace("ops = 500", "duration = \"2s\"").replace(
        "server = [\"redis@6.2\"]",
        "server = [\"redis@6.2\"]\npersistence = [\"none\", \"rdb\", \"aof-everysec\"]",
    );
    write(dir.path(), "m.toml", &body);
    let mut child = cachegate()
        .args(["run", "--no-progress", "--out", "out", "m.toml"])
        .current_dir(dir.path())
        .env("TMPDIR", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = dir.path().join("out");
    let start = Instant::now();
    let jsonl = loop {
        let found = std::fs::read_dir(&out)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path().join("results.jsonl"))
            .filter(|j| std::fs::read_to_string(j).is_ok_and(|t| t.lines().count() == 1));
        if let Some(j) = found {
            break j;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no cell finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let first = std::fs::read_to_string(&jsonl).unwrap();
    // As if the kill had come in the middle of appending the second cell.
    let mut cut = first.clone();
    cut.push_str(&first[..first.len() / 2]);
    std::fs::write(&jsonl, cut).unwrap();
    let run = jsonl.parent().unwrap().to_path_buf();

    let resume = || {
        cachegate()
            .args(["run", "--no-progress", "--resume"])
            .arg(run.strip_prefix(dir.path()).unwrap())
            .current_dir(dir.path())
            .env("TMPDIR", dir.path())
            .output()
            .unwrap()
    };
    let resumed = resume();
    let msg = text(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{msg}");
    assert!(msg.contains("the last line, with no newline"), "{msg}");
    assert!(msg.contains("1 of 3 cells done, 2 to run"), "{msg}");
    let results = read_jsonl(&jsonl).expect("every line whole again");
    let mut ids: Vec<&str> = results.iter().map(|r| r.cell_id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["redis@6.2/aof-everysec", "redis@6.2/none", "redis@6.2/rdb"],
        "{msg}"
    );
    assert!(std::fs::read_to_string(&jsonl).unwrap().starts_with(&first));
    assert!(results.iter().all(|r| r.verdict == Verdict::Pass), "{msg}");
    assert!(results.iter().all(|r| r.run_id == results[0].run_id));
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["end"]["outcome"], "completed", "{info}");
    assert_eq!(info["resume"]["resumed_at"].as_array().unwrap().len(), 1);
    let csv = std::fs::read_to_string(run.join("results.csv")).unwrap();
    // The CSV is rewritten from results.jsonl: as many rows for the cell run before the kill
    // as for one run after it (no rows of the cut line, none twice).
    let rows = |id: &str| {
        csv.lines()
            .filter(|l| l.contains(&format!(",{id},")))
            .count()
    };
    assert!(rows("redis@6.2/none") > 0);
    assert_eq!(rows("redis@6.2/none"), rows("redis@6.2/rdb"), "{csv}");

    // Completed: nothing to resume.
    let again = resume();
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        text(&again).contains("nothing to resume"),
        "{}",
        text(&again)
    );
    // Unfinished, but the matrix changed since: refused, naming the cell.
    let mut info = info;
    info["end"] = serde_json::Value::Null;
    std::fs::write(run.join("run.json"), info.to_string()).unwrap();
    write(
        dir.path(),
        "m.toml",
        &body.replace("connections = 2", "connections = 3"),
    );
    let changed = resume();
    let msg = text(&changed);
    assert_eq!(changed.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(
            "m.toml changed since the run started (cell redis@6.2/none is not what it was)"
        ),
        "{msg}"
    );
    assert_eq!(read_jsonl(&jsonl).unwrap().len(), 3, "nothing was run");
}

/// A real login-flow run with a server password and a Django SECRET_KEY, under a matrix named
/// like a path: neither secret appears in any file of the run folder or on the console (the
/// fact that auth was on is kept, redacted), and the run folder is one folder inside `--out`.
#[test]
fn secrets_appear_in_no_output_and_a_path_like_name_stays_inside_out() {
    let (password, secret_key) = ("Sup3rS3cretPw", "djangoSecretKeyValue123");
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let body = format!(
        r#"[matrix]
name = "../../escaped-dir"
[axes]
server = ["redis@7.4"]
stack = ["django-5.2"]
settings = ["cache"]
[server]
requirepass = "{password}"
[stacks."django-5.2"]
python = "3.11"
packages = ["django==5.2.*", "redis==5.2.*"]
[settings.cache]
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECRET_KEY = "{secret_key}"
[settings.cache.CACHES.default]
BACKEND = "django.core.cache.backends.redis.RedisCache"
[scenario]
kind = "login-flow"
users = 2
iterations = 1
"#
    );
    write(&work, "m.toml", &body);
    let out = cachegate()
        .args(["run", "--no-progress", "--out", "out", "m.toml"])
        .current_dir(&work)
        .output()
        .unwrap();
    let console = text(&out);
    assert_eq!(out.status.code(), Some(0), "{console}");
    // The flow really ran through the password-protected server.
    let run = only_run_dir(&work.join("out"));
    let results = read_jsonl(&run.join("results.jsonl")).unwrap();
    assert_eq!(results[0].verdict, Verdict::Pass, "{console}");
    assert!(!console.contains(password) && !console.contains(secret_key));
    let mut files = 0;
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap() != "m.toml" {
                let bytes = std::fs::read(&p).unwrap();
                let t = String::from_utf8_lossy(&bytes);
                assert!(!t.contains(password), "{} holds the password", p.display());
                assert!(!t.contains(secret_key), "{} holds SECRET_KEY", p.display());
                files += 1;
            }
        }
    }
    assert!(files >= 9, "{files} files checked");
    let jsonl = std::fs::read_to_string(run.join("results.jsonl")).unwrap();
    assert!(jsonl.contains("<redacted>"), "auth being on is kept");
    // One folder inside out, named from the matrix name made safe; nothing beside `work`.
    assert_eq!(run.parent(), Some(work.join("out").as_path()));
    let beside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(beside.len(), 1, "{beside:?}");
}

/// `-v` says what the harness started and when it was ready (debug events); without it the
/// output stays the short one.
#[test]
fn verbose_run_says_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let matrix = write(dir.path(), "m.toml", GOOD);
    let run = |verbose: bool| {
        let mut c = cachegate();
        // RUST_LOG would override -v.
        c.env_remove("RUST_LOG");
        if verbose {
            c.arg("-v");
        }
        let out = c
            .args(["run", "--no-progress", "--out"])
            .arg(dir.path().join(if verbose { "v" } else { "q" }))
            .arg(&matrix)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let verbose = run(true);
    for event in ["cell starts", "process ready"] {
        assert!(verbose.contains(event), "no {event:?} in {verbose}");
    }
    let ready = verbose
        .lines()
        .find(|l| l.contains("process ready"))
        .unwrap();
    assert!(
        ready.contains("server=redis@6.2") && ready.contains("port=") && ready.contains("pid="),
        "{ready}"
    );
    // stderr is a pipe here: no colour codes.
    assert!(!verbose.contains('\x1b'), "{verbose}");
    let quiet = run(false);
    assert!(!quiet.contains("process ready"), "{quiet}");
}
