//! The fast tier on hostile input (issue 19.11, 16.3): values and files that must give a clear
//! error naming file, line and field with exit 2 — never a panic, a hang or a wrong exit code.
//! The real binary, no server: `cargo test --test fast_inputs`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{cachegate, output_text, run_cli};

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

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `check FILE` in `dir`: it must exit 2 with `location` and every part of `message`.
fn rejected(dir: &Path, file: &str, location: &str, message: &[&str]) -> String {
    let (code, text) = run_cli(dir, &["check", file]);
    assert_eq!(code, Some(2), "{file}: {text}");
    assert!(
        text.contains(&format!("{file}{location}: ")),
        "{file}: {text}"
    );
    for m in message {
        assert!(text.contains(m), "{file}: {m:?} not in {text}");
    }
    assert!(!text.contains("panicked"), "{text}");
    text
}

#[test]
fn thread_counts_out_of_range_are_usage_errors_and_in_range_ones_work() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.toml", GOOD);
    for threads in ["5000", "0", "99999999999999999999999", "lots"] {
        let started = Instant::now();
        let (code, text) = run_cli(dir.path(), &["run", "--threads", threads, "m.toml"]);
        assert_eq!(code, Some(2), "--threads {threads}: {text}");
        assert!(text.contains("--threads"), "{text}");
        assert!(!text.contains("panicked"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    let (_, text) = run_cli(dir.path(), &["run", "--threads", "5000", "m.toml"]);
    assert!(text.contains("must be between 1 and 256"), "{text}");
    // The environment variable goes through the same check.
    let out = cachegate()
        .args(["run", "m.toml"])
        .env("CACHEGATE_THREADS", "5000")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    // The largest accepted count builds its runtime: the run gets as far as the filter (which
    // matches nothing here, so nothing is started or written).
    let (code, text) = run_cli(
        dir.path(),
        &[
            "run",
            "--threads",
            "256",
            "--filter",
            "nothing-matches",
            "m.toml",
        ],
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("matched none"), "{text}");
    assert!(!dir.path().join("reports").exists());
}

#[test]
fn files_that_are_not_utf8_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    // A Latin-1 byte in the matrix's name.
    let mut bytes = GOOD.replace("name = \"t\"", "name = \"t~\"").into_bytes();
    let at = bytes.iter().position(|b| *b == b'~').unwrap();
    bytes[at] = 0xff;
    write(dir.path(), "latin1.toml", &bytes);
    rejected(
        dir.path(),
        "latin1.toml",
        ":2:10",
        &["field `matrix.name`", "not valid UTF-8 (byte 0xff)"],
    );

    // A `use`d scenario file that is not UTF-8, and a `use` naming a folder.
    write(
        dir.path(),
        "bad-scenario.toml",
        b"kind = \"cache-ops\"\nseed = 1 # \xfe\n",
    );
    std::fs::create_dir(dir.path().join("a-folder.toml")).unwrap();
    for (use_file, location, message) in [
        ("bad-scenario.toml", ":2:12", "not valid UTF-8 (byte 0xfe)"),
        ("a-folder.toml", "", "is a folder, not a scenario file"),
    ] {
        let body = GOOD.replace("kind = \"cache-ops\"", &format!("use = \"{use_file}\""));
        let name = format!("use-{use_file}");
        write(dir.path(), &name, body);
        let text = if location.is_empty() {
            rejected(dir.path(), &name, ":6:7", &["field `use`", message])
        } else {
            let (code, text) = run_cli(dir.path(), &["check", &name]);
            assert_eq!(code, Some(2), "{text}");
            assert!(text.contains(&format!("{use_file}{location}: ")), "{text}");
            assert!(text.contains(message), "{text}");
            text
        };
        assert!(!text.contains("panicked"), "{text}");
    }
}

#[test]
fn include_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let with_include = |include: &str| format!("{GOOD}[[include]]\n{include}\n");
    let cases = [
        (
            "no-server.toml",
            "persistence = \"rdb\"",
            ":10:1",
            "field `include.server`: every [[include]] needs a `server`",
        ),
        (
            "variant.toml",
            "server = \"redis@7.4\"\nvariant = \"p99\"",
            ":12:1",
            "field `include.variant`: unknown variant `p99`",
        ),
        (
            "stack.toml",
            "server = \"redis@7.4\"\nstack = \"nope\"",
            ":12:1",
            "field `include.stack`: `nope` is not defined by any [stacks.\"nope\"]",
        ),
    ];
    for (name, include, location, message) in cases {
        write(dir.path(), name, with_include(include));
        rejected(dir.path(), name, location, &[message]);
    }
}

/// Issue 16.3's check must not reject an `[[expect]]` whose values only an `[[include]]` adds.
#[test]
fn expectations_may_name_values_only_an_include_adds() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "{GOOD}[[include]]\nserver = \"redis@7.4\"\npersistence = \"rdb\"\npolicy = \"allkeys-lru\"\n\
         [[expect]]\nwhen = {{ server = \"redis@7.4\", persistence = \"rdb\", policy = \"allkeys-lru\" }}\n\
         verdict = \"fail\"\n"
    );
    write(dir.path(), "m.toml", body);
    let (code, text) = run_cli(dir.path(), &["check", "m.toml"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("redis@7.4/rdb/allkeys-lru  [t #1] expect fail"),
        "{text}"
    );
    assert!(
        text.contains("redis@6.2/none  [t #1] expect pass"),
        "{text}"
    );
    // A value on neither the axes nor an include is still refused.
    let body = format!(
        "{GOOD}[[include]]\nserver = \"redis@7.4\"\n[[expect]]\nwhen = {{ persistence = \"aof-always\" }}\nverdict = \"fail\"\n"
    );
    write(dir.path(), "typo.toml", body);
    rejected(
        dir.path(),
        "typo.toml",
        ":13:10",
        &["`aof-always` is not on the matrix's persistence axis or in an [[include]] (none)"],
    );
}

/// A copy of the fixture run whose results.jsonl is `edit`ed.
fn fixture_run(dir: &Path, name: &str, edit: impl Fn(Vec<u8>) -> Vec<u8>) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run");
    let run = dir.join(name);
    std::fs::create_dir_all(&run).unwrap();
    std::fs::copy(fixture.join("run.json"), run.join("run.json")).unwrap();
    let results = std::fs::read(fixture.join("results.jsonl")).unwrap();
    std::fs::write(run.join("results.jsonl"), edit(results)).unwrap();
    run
}

#[test]
fn broken_results_files_are_bad_input_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = fixture_run(dir.path(), "good", |b| b);
    // Line 3 gets a byte that is not UTF-8; the last line is cut in half (a killed writer).
    let not_utf8 = fixture_run(dir.path(), "not-utf8", |mut b| {
        let third = b
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == b'\n')
            .nth(1)
            .unwrap()
            .0
            + 20;
        b[third] = 0xff;
        b
    });
    let truncated = fixture_run(dir.path(), "truncated", |mut b| {
        let last = b[..b.len() - 1].iter().rposition(|c| *c == b'\n').unwrap();
        b.truncate(last + 1 + (b.len() - last) / 2);
        b
    });
    let lines = std::fs::read_to_string(good.join("results.jsonl"))
        .unwrap()
        .lines()
        .count();
    // A broken line inside the file is a hand edit: refused.
    for (run, location, message) in [(&not_utf8, ":3:20".to_string(), "not valid UTF-8")] {
        let jsonl = run.join("results.jsonl").display().to_string();
        let report = run_cli(dir.path(), &["report".as_ref(), run.as_os_str()]);
        let compare = run_cli(
            dir.path(),
            &["compare".as_ref(), good.as_os_str(), run.as_os_str()],
        );
        let baseline = run_cli(
            dir.path(),
            &["compare".as_ref(), run.as_os_str(), good.as_os_str()],
        );
        for (code, text) in [report, compare, baseline] {
            assert_eq!(code, Some(2), "{text}");
            assert!(text.contains(&format!("{jsonl}{location}")), "{text}");
            assert!(text.contains(message), "{text}");
        }
    }
    // A last line cut off mid-write is a killed append: every complete cell is rendered, and
    // the broken line is named in a warning, for report and compare on either side.
    let jsonl = truncated.join("results.jsonl").display().to_string();
    let report = run_cli(dir.path(), &["report".as_ref(), truncated.as_os_str()]);
    let compare = run_cli(
        dir.path(),
        &["compare".as_ref(), good.as_os_str(), truncated.as_os_str()],
    );
    let baseline = run_cli(
        dir.path(),
        &["compare".as_ref(), truncated.as_os_str(), good.as_os_str()],
    );
    for (code, text) in [&report, &compare, &baseline] {
        assert_ne!(*code, Some(2), "{text}");
        assert!(
            text.contains(&format!("warning: {jsonl}:{lines}:"))
                && text.contains("the last line, with no newline"),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} complete cell result(s) read", lines - 1)),
            "{text}"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(truncated.join("summary.json")).unwrap())
            .unwrap();
    let html = std::fs::read_to_string(truncated.join("index.html")).unwrap();
    let cells = summary["cells"].as_array().unwrap();
    assert!(!cells.is_empty());
    for c in cells {
        let id = c["cell_id"].as_str().unwrap();
        assert!(
            html.contains(&format!("id=\"cell-{id}\"")),
            "{id} not rendered"
        );
    }
    // The read that a run's own tools use refuses the cut line, naming it.
    let err = cachegate::results::store::read_jsonl(&truncated.join("results.jsonl")).unwrap_err();
    assert!(
        err.to_string().contains(&format!("{jsonl}:{lines}:")),
        "{err}"
    );
}

/// An I/O error names its OS error once, not once per level of the error chain.
#[test]
fn os_errors_are_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = fixture_run(dir.path(), "run", |b| b);
    // summary.json cannot be written where a folder of that name is.
    std::fs::create_dir(run.join("summary.json")).unwrap();
    let (code, text) = run_cli(dir.path(), &["report".as_ref(), run.as_os_str()]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("writing summary.json"), "{text}");
    assert_eq!(text.matches("(os error").count(), 1, "{text}");
}

/// Under a process limit that leaves room for fewer threads than asked, `--threads` is a clear
/// error (tokio itself would panic and hang). Needs root to run the binary as another user,
/// since root is exempt from RLIMIT_NPROC.
#[test]
fn threads_beyond_the_process_limit_are_a_clear_error_not_a_panic() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to switch to an unprivileged user");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let matrix = write(dir.path(), "m.toml", GOOD);
    std::fs::set_permissions(&matrix, std::fs::Permissions::from_mode(0o644)).unwrap();
    let started = Instant::now();
    let out = std::process::Command::new("prlimit")
        .args([
            "--nproc=8",
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .arg(env!("CARGO_BIN_EXE_cachegate"))
        .args([
            "run",
            "--threads",
            "64",
            "--filter",
            "nothing-matches",
            "m.toml",
        ])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("--threads 64: cannot start the load threads"),
        "{text}"
    );
    assert!(text.contains("lower --threads"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Issue 14.7: a matrix outside the source tree uses the bundled scenarios by name; what it
/// gets is exactly the scenario file, and an unknown name lists the bundled ones.
#[test]
fn bundled_scenarios_are_usable_by_name_from_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let matrix = |use_value: &str| {
        format!("[matrix]\nname = \"b\"\n[axes]\nserver = [\"redis@6.2\"]\n[scenario]\nuse = \"{use_value}\"\n")
    };
    let by_name = write(dir.path(), "by-name.toml", matrix("cache-ops"));
    let by_file = write(
        dir.path(),
        "by-file.toml",
        matrix(&repo.join("scenarios/cache-ops.toml").display().to_string()),
    );
    let named = cachegate::config::load_matrix(&by_name).unwrap();
    let filed = cachegate::config::load_matrix(&by_file).unwrap();
    assert_eq!(named.scenario, filed.scenario);
    let (code, text) = run_cli(dir.path(), &["check", "by-name.toml"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("redis@6.2/none  [b #1] expect pass"),
        "{text}"
    );

    write(dir.path(), "typo.toml", matrix("login-flw"));
    rejected(
        dir.path(),
        "typo.toml",
        ":6:7",
        &[
            "field `use`: no bundled scenario `login-flw`",
            "cache-ops, durability, eviction, login-flow, outage, rolling-upgrade, server-upgrade, session-persistence",
        ],
    );
}

/// A rolling upgrade builds its own primary/replica pair from the cell's one server: `check`
/// refuses it on another topology, on bridge-network containers and with a `to` that cannot
/// replicate (memcached), and accepts it otherwise.
#[test]
fn rolling_upgrade_cells_that_cannot_form_their_pair_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = r#"[matrix]
name = "r"
[axes]
server = ["redis@6.2"]
stack = ["s"]
settings = ["c"]
[stacks.s]
packages = ["django==5.2.*"]
[settings.c]
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
[scenario]
use = "rolling-upgrade"
"#;
    write(dir.path(), "ok.toml", base);
    let (code, text) = run_cli(dir.path(), &["check", "ok.toml"]);
    assert_eq!(code, Some(0), "{text}");
    let edits = [
        (
            "topology.toml",
            "stack = [\"s\"]\ntopology = [\"replica:1\"]",
            "needs topology `standalone`",
        ),
        (
            "bridge.toml",
            "stack = [\"s\"]\nruntime = [\"container\"]",
            "on containers, the host",
        ),
    ];
    for (file, edit, needle) in edits {
        let mut body = base.replacen("stack = [\"s\"]", edit, 1);
        if file == "bridge.toml" {
            body.push_str("[runtime.container]\nnetwork = \"bridge\"\n");
        }
        write(dir.path(), file, body);
        rejected(dir.path(), file, "", &["rolling-upgrade", needle]);
    }
    write(
        dir.path(),
        "to.toml",
        format!("{base}to = \"memcached@1.6\"\n"),
    );
    let (code, text) = run_cli(dir.path(), &["check", "to.toml"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("replicates to a Redis or Valkey server"),
        "{text}"
    );
}

/// memcached is one server: a topology of nodes (replicas, Sentinels, a cluster) is refused at
/// `check` time, at the `topology` line of [axes], for every kind of topology.
#[test]
fn topologies_on_memcached_are_refused_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    for (name, topology) in [
        ("mc-replica.toml", "replica:1"),
        ("mc-sentinel.toml", "sentinel"),
        ("mc-cluster.toml", "cluster:3"),
    ] {
        let body = GOOD.replace(
            "server = [\"redis@6.2\"]",
            &format!("server = [\"memcached@1.6\"]\ntopology = [\"standalone\", \"{topology}\"]"),
        );
        write(dir.path(), name, body);
        rejected(
            dir.path(),
            name,
            ":5:1",
            &[
                "field `axes.topology`",
                "memcached@1.6: memcached has no replication, Sentinel or cluster mode",
                &format!("topology `{topology}` needs Redis or Valkey"),
            ],
        );
    }
    // Standalone alone is memcached's one topology, and Redis takes the same axis.
    let standalone = GOOD.replace(
        "server = [\"redis@6.2\"]",
        "server = [\"memcached@1.6\"]\ntopology = [\"standalone\"]",
    );
    write(dir.path(), "mc-standalone.toml", standalone);
    let (code, text) = run_cli(dir.path(), &["check", "mc-standalone.toml"]);
    assert_eq!(code, Some(0), "{text}");
    let redis = GOOD.replace(
        "server = [\"redis@6.2\"]",
        "server = [\"redis@7.4\"]\ntopology = [\"replica:1\"]",
    );
    write(dir.path(), "redis-replica.toml", redis);
    let (code, text) = run_cli(dir.path(), &["check", "redis-replica.toml"]);
    assert_eq!(code, Some(0), "{text}");
}

/// `[report]`: an axis that does not exist, and an explanations file with a bad pattern, are
/// refused with file, line and field; a good explanations file is accepted.
#[test]
fn report_section_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!("{GOOD}\n[report]\ncolumns = [\"sever\"]\n");
    let line = body.lines().position(|l| l.starts_with("columns")).unwrap() + 1;
    write(dir.path(), "axis.toml", &body);
    rejected(
        dir.path(),
        "axis.toml",
        &format!(":{line}:12"),
        &[
            "field `report.columns`: no axis `sever`",
            "server, persistence",
        ],
    );
    write(
        dir.path(),
        "ours.toml",
        "[[explanation]]\nmeans = \"m\"\ncause = \"c\"\nfix = \"f\"\npattern = \"([a-z]\"\n",
    );
    write(
        dir.path(),
        "bad.toml",
        format!("{GOOD}\n[report]\nexplanations = \"ours.toml\"\n"),
    );
    let (code, text) = run_cli(dir.path(), &["check", "bad.toml"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("ours.toml:5:")
            && text.contains("field `explanation.pattern`: not a regular expression"),
        "{text}"
    );
    write(
        dir.path(),
        "ours.toml",
        "[[explanation]]\npattern = \"CLIENT_CLASS\"\nmeans = \"m\"\ncause = \"c\"\nfix = \"f\"\n",
    );
    let (code, text) = run_cli(dir.path(), &["check", "bad.toml"]);
    assert_eq!(code, Some(0), "{text}");
}

/// The `tls` transport and ACL users where they cannot work are refused at `check` with file,
/// line and field: TLS in containers, on a topology or on memcached, an `acl_user` that is not
/// among the users, ACL users on redis 5; the same matrix on the process runtime passes.
#[test]
fn tls_and_acl_users_where_they_cannot_work_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tls = |extra_axes: &str, tail: &str| {
        GOOD.replace(
            "server = [\"redis@6.2\"]",
            &format!("server = [\"redis@7.4\"]\n{extra_axes}transport = [\"plaintext\", \"tls\"]"),
        ) + tail
    };
    for (name, body, message) in [
        (
            "tls-container.toml",
            tls("runtime = [\"container\"]\n", ""),
            "the tls transport runs on the process runtime only",
        ),
        (
            "tls-replica.toml",
            tls("topology = [\"replica:1\"]\n", ""),
            "the tls transport with topology `replica:1` is not supported yet",
        ),
        (
            "acl-unknown.toml",
            tls("", "acl_user = \"nobody\"\n"),
            "acl_user `nobody` is not one of [[server.users]]",
        ),
    ] {
        write(dir.path(), name, body);
        let field = if name.starts_with("acl") {
            "field `scenario.acl_user`"
        } else {
            "field `axes.transport`"
        };
        let (code, text) = run_cli(dir.path(), &["check", name]);
        assert_eq!(code, Some(2), "{name}: {text}");
        assert!(
            text.contains(field) && text.contains(message),
            "{name}: {text}"
        );
        assert!(text.contains(&format!("{name}:")), "{name}: {text}");
    }
    let memcached = GOOD.replace(
        "server = [\"redis@6.2\"]",
        "server = [\"memcached@1.6\"]\ntransport = [\"tls\"]",
    );
    write(dir.path(), "tls-memcached.toml", memcached);
    rejected(
        dir.path(),
        "tls-memcached.toml",
        ":5:1",
        &["field `axes.transport`", "needs a Redis or Valkey server"],
    );
    let old = GOOD.replace("server = [\"redis@6.2\"]", "server = [\"redis@5.0\"]")
        + "[server]\nusers = [{ name = \"app\", password = \"p\" }]\n";
    write(dir.path(), "acl-redis5.toml", old);
    rejected(
        dir.path(),
        "acl-redis5.toml",
        ":11:1",
        &["field `server.users`", "ACL users need Redis 6 or later"],
    );
    let good = tls("", "acl_user = \"app\"\n")
        + "[server]\nusers = [{ name = \"app\", password = \"p\", rules = \"~* +@all\" }]\n";
    write(dir.path(), "good.toml", good);
    let (code, text) = run_cli(dir.path(), &["check", "good.toml"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("redis@7.4/none/tls"), "{text}");
}
