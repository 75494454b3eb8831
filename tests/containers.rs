//! The container runtime on the real Docker engine: cells on locally built images next to
//! process cells, sessions across container restarts as each persistence mode promises, and
//! nothing left behind (containers, volumes, networks), also after SIGINT and SIGKILL.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cachegate::results::{CellResult, Verdict};

const CACHE_OPS: &str = r#"
[scenario]
kind = "cache-ops"
connections = 4
duration = "1s"
warmup = "0s"
"#;

/// Names of containers, volumes and networks carrying `label` (e.g. `cachegate.run=ID`).
fn labelled(label: &str) -> Vec<String> {
    let mut found = vec![];
    for args in [
        vec!["ps", "-a", "--format", "container {{.Names}}"],
        vec!["volume", "ls", "--format", "volume {{.Name}}"],
        vec!["network", "ls", "--format", "network {{.Name}}"],
    ] {
        let mut cmd = Command::new("docker");
        cmd.args(&args[..args.len() - 2])
            .args(["--filter", &format!("label={label}")])
            .args(&args[args.len() - 2..]);
        let out = cmd.output().expect("the docker CLI runs");
        assert!(out.status.success(), "docker {args:?}: {out:?}");
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string),
        );
    }
    found
}

/// Every run sweeps what dead harnesses left, so the test that kills a harness and expects the
/// *next* run to report the sweep runs alone (write lock); the others run side by side (read).
static RUNS: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    RUNS.read().unwrap_or_else(|e| e.into_inner())
}

fn run_id(results: &[CellResult]) -> String {
    results.first().expect("a result").run_id.clone()
}

#[test]
fn process_and_container_cells_of_two_versions_land_in_one_report() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        r#"[matrix]
name = "both-runtimes"
[axes]
server = ["redis@6.2", "valkey@9.1"]
runtime = ["process", "container"]
{CACHE_OPS}"#
    );
    let (code, text, results) = common::run_matrix(dir.path(), &body);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(results.len(), 4, "{text}");
    for (id, runtime, image) in [
        ("redis@6.2/none", "process", None),
        (
            "redis@6.2/none/container",
            "container",
            Some("cachegate/redis:6.2.14"),
        ),
        ("valkey@9.1/none", "process", None),
        (
            "valkey@9.1/none/container",
            "container",
            Some("cachegate/valkey:9.1.2"),
        ),
    ] {
        let r = common::find_cell(&results, id);
        assert_eq!(r.verdict, Verdict::Pass, "{id}: {}", r.verdict_reason);
        let server = r.server.as_ref().unwrap();
        assert_eq!(server.identity.runtime, runtime, "{id}");
        assert_eq!(server.identity.image.as_deref(), image, "{id}");
        if runtime == "container" {
            assert_eq!(server.identity.network.as_deref(), Some("host"), "{id}");
            assert!(server.identity.container.is_some(), "{id}");
            assert!(server
                .identity
                .image_id
                .as_deref()
                .unwrap()
                .starts_with("sha256:"));
            assert!(server.identity.pid.is_none());
        } else {
            assert!(server.identity.pid.is_some(), "{id}");
        }
        assert!(r.total().unwrap().ok > 0, "{id}: no operation succeeded");
        // The server's own log was captured from the container like a process log.
        let log = std::fs::read_to_string(
            common::only_run_dir(&dir.path().join("out")).join(server.log.as_ref().unwrap()),
        )
        .unwrap();
        assert!(log.contains("Ready to accept connections"), "{id}: {log}");
    }
    let html =
        std::fs::read_to_string(common::only_run_dir(&dir.path().join("out")).join("index.html"))
            .unwrap();
    assert!(html.contains("redis@6.2/none/container"));
    assert!(labelled(&format!("cachegate.run={}", run_id(&results))).is_empty());
}

#[test]
fn a_bridge_network_publishes_on_loopback_and_is_removed() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        r#"[matrix]
name = "bridge"
[axes]
server = ["redis@7.4"]
runtime = ["container"]
[runtime.container]
network = "bridge"
memory = "256m"
[server]
requirepass = 'q"uo\te\x41'
{CACHE_OPS}"#
    );
    let (code, text, results) = common::run_matrix(dir.path(), &body);
    assert_eq!(code, Some(0), "{text}");
    let r = common::find_cell(&results, "redis@7.4/none/container");
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.verdict_reason);
    assert_eq!(
        r.server.as_ref().unwrap().identity.network.as_deref(),
        Some("bridge")
    );
    assert!(r.total().unwrap().ok > 0);
    assert_eq!(r.total().unwrap().errors, 0, "{text}");
    assert!(labelled(&format!("cachegate.run={}", run_id(&results))).is_empty());
}

#[test]
fn a_bridge_network_works_without_a_password_too() {
    let _shared = shared();
    // Without requirepass, protected mode would refuse connections arriving via docker-proxy.
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        r#"[matrix]
name = "bridge-open"
[axes]
server = ["valkey@9.1"]
runtime = ["container"]
[runtime.container]
network = "bridge"
{CACHE_OPS}"#
    );
    let (code, text, results) = common::run_matrix(dir.path(), &body);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(results[0].total().unwrap().errors, 0, "{text}");
    assert!(labelled(&format!("cachegate.run={}", run_id(&results))).is_empty());
}

#[test]
fn sessions_across_container_restarts_follow_the_persistence_promise() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let body = r#"[matrix]
name = "container-sessions"
[axes]
server = ["redis@7.4"]
persistence = ["none", "aof-always"]
runtime = ["process", "container"]
stack = ["django-5.2"]
settings = ["cache"]
[stacks."django-5.2"]
python = "3.11"
packages = ["django==5.2.*", "redis==5.2.*"]
[settings.cache]
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
[settings.cache.CACHES.default]
BACKEND = "django.core.cache.backends.redis.RedisCache"
[scenario]
kind = "session-persistence"
users = 8
[[axes.variant]]
label = "kill"
restart = "kill"
[[axes.variant]]
label = "graceful"
restart = "graceful"
[[axes.variant]]
label = "aof-off"
restart = "graceful"
restart_persistence = "none"
[[axes.variant]]
label = "save"
restart = "save"
[[exclude]]
persistence = "aof-always"
variant = "save"
[[exclude]]
persistence = "none"
variant = "aof-off"
[[exclude]]
persistence = "none"
variant = "graceful"
"#;
    let (code, text, results) = common::run_matrix(dir.path(), body);
    assert_eq!(code, Some(0), "{text}");
    let kept = |id: &str| {
        let r = common::find_cell(&results, id);
        let p = r
            .check
            .as_ref()
            .and_then(|c| c.persistence())
            .unwrap_or_else(|| panic!("{id}: no check: {}", r.verdict_reason));
        assert_eq!((p.before, p.unknown), (8, 0), "{id}: {p:?}");
        assert!(p.matches, "{id}: {p:?}");
        p.kept
    };
    // AOF with fsync always keeps every session through a SIGKILL (docker kill), on the
    // volume just as in the process's data dir; no persistence loses them all.
    assert_eq!(
        kept("redis@7.4/aof-always/container/django-5.2/cache/kill"),
        8
    );
    assert_eq!(kept("redis@7.4/none/container/django-5.2/cache/kill"), 0);
    assert_eq!(
        kept("redis@7.4/aof-always/container/django-5.2/cache/graceful"),
        8
    );
    // Every variant behaves on a container as on a process, including a new container on the
    // same volume with persistence turned off.
    for variant in ["kill", "graceful", "aof-off", "save"] {
        for mode in ["none", "aof-always"] {
            let process = format!("redis@7.4/{mode}/django-5.2/cache/{variant}");
            if results.iter().all(|r| r.cell_id != process) {
                continue;
            }
            let container = format!("redis@7.4/{mode}/container/django-5.2/cache/{variant}");
            assert_eq!(kept(&process), kept(&container), "{variant} on {mode}");
        }
    }
    assert!(labelled(&format!("cachegate.run={}", run_id(&results))).is_empty());
}

#[test]
fn without_a_docker_engine_container_cells_are_errors_and_process_cells_run() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        r#"[matrix]
name = "no-docker"
[axes]
server = ["valkey@9.1"]
runtime = ["process", "container"]
{CACHE_OPS}"#
    );
    std::fs::write(dir.path().join("m.toml"), body).unwrap();
    let out = common::cachegate()
        .args(["run", "--no-progress", "--out", "out", "m.toml"])
        .current_dir(dir.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let text = common::output_text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let run_dir = common::only_run_dir(&dir.path().join("out"));
    let results = cachegate::results::store::read_jsonl(&run_dir.join("results.jsonl")).unwrap();
    assert_eq!(
        common::find_cell(&results, "valkey@9.1/none").verdict,
        Verdict::Pass
    );
    let c = common::find_cell(&results, "valkey@9.1/none/container");
    assert_eq!(c.verdict, Verdict::Error);
    let why = c.infra_error.as_deref().unwrap();
    assert!(why.contains("unix:///nonexistent/docker.sock"), "{why}");
    assert!(why.contains("runtime = \"process\""), "{why}");
}

#[test]
fn a_missing_override_image_is_an_error_naming_the_tag_not_a_hang() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        r#"[matrix]
name = "missing-image"
[axes]
server = ["valkey@9.1"]
runtime = ["container"]
[runtime.container]
images."valkey@9" = "cachegate-test/not-here:0"
{CACHE_OPS}"#
    );
    let started = Instant::now();
    let (code, text, results) = common::run_matrix(dir.path(), &body);
    assert_eq!(code, Some(3), "{text}");
    let why = results[0].infra_error.as_deref().unwrap();
    assert!(why.contains("cachegate-test/not-here:0"), "{why}");
    assert!(why.contains("cachegate images build valkey@9.1.2"), "{why}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(labelled(&format!("cachegate.run={}", run_id(&results))).is_empty());
}

/// Start a long container cell and wait until its container exists; returns the child and
/// the harness label its resources carry.
fn start_long_container_run(dir: &Path) -> (std::process::Child, String) {
    let body = r#"[matrix]
name = "long"
[axes]
server = ["valkey@9.1"]
runtime = ["container"]
[scenario]
kind = "cache-ops"
connections = 2
duration = "60s"
"#;
    std::fs::write(dir.join("m.toml"), body).unwrap();
    let child = common::cachegate()
        .args(["run", "--no-progress", "--out", "out", "m.toml"])
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
    let start = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    let label = format!("cachegate.harness={}:{start}", child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !labelled(&label).iter().any(|l| l.starts_with("container ")) {
        assert!(
            Instant::now() < deadline,
            "no container appeared for {label}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the load begin.
    std::thread::sleep(Duration::from_secs(2));
    (child, label)
}

#[test]
fn ctrl_c_in_a_container_cell_removes_everything() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let (child, label) = start_long_container_run(dir.path());
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        common::output_text(&out)
    );
    assert_eq!(labelled(&label), Vec::<String>::new());
}

#[test]
fn leftovers_of_a_killed_harness_are_removed_by_the_next_run() {
    let _alone = RUNS.write().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (mut child, label) = start_long_container_run(dir.path());
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let left = labelled(&label);
    assert!(left.iter().any(|l| l.starts_with("container ")), "{left:?}");
    assert!(left.iter().any(|l| l.starts_with("volume ")), "{left:?}");

    let next = tempfile::tempdir().unwrap();
    let body = format!(
        r#"[matrix]
name = "next"
[axes]
server = ["valkey@9.1"]
runtime = ["container"]
{CACHE_OPS}"#
    );
    let (code, text, _) = common::run_matrix(next.path(), &body);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("removed what an earlier run left behind"),
        "{text}"
    );
    assert_eq!(labelled(&label), Vec::<String>::new());
}

/// Images of the versions with their own libraries: OpenSSL 1.1 beside 7.2, bookworm's jemalloc
/// beside valkey 8.0, and trixie's glibc with its own loader for redis 8.0 (the image's
/// `/lib64/ld-linux-x86-64.so.2` is trixie's, not this OS's).
#[test]
fn images_of_versions_with_private_libraries_serve_cache_ops() {
    let _shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        r#"[matrix]
name = "private-libs"
[axes]
server = ["redis@7.2", "redis@8.0", "valkey@8.0"]
runtime = ["container"]
{CACHE_OPS}"#
    );
    let (code, text, results) = common::run_matrix(dir.path(), &body);
    assert_eq!(code, Some(0), "{text}");
    for (id, image) in [
        ("redis@7.2/none/container", "cachegate/redis:7.2.4"),
        ("redis@8.0/none/container", "cachegate/redis:8.0.2"),
        ("valkey@8.0/none/container", "cachegate/valkey:8.0.1"),
    ] {
        let r = common::find_cell(&results, id);
        assert_eq!(r.verdict, Verdict::Pass, "{id}: {}", r.verdict_reason);
        let server = r.server.as_ref().unwrap();
        assert_eq!(server.identity.image.as_deref(), Some(image), "{id}");
        assert!(r.total().unwrap().ok > 0, "{id}: no operation succeeded");
    }
    let loader = cachegate::server::image::describe_root(&common::provision("redis@8.0"))
        .unwrap()
        .into_iter()
        .find(|(_, dest)| dest == "lib64/ld-linux-x86-64.so.2")
        .expect("the image has a loader");
    assert!(
        loader
            .0
            .starts_with(cachegate::server::provision::default_cache_dir()),
        "{loader:?}"
    );
    assert!(labelled(&format!("cachegate.run={}", run_id(&results))).is_empty());
}

/// memcached in a container, on the host network and on a bridge published on 127.0.0.1: the
/// image takes no config file (memcached reads options only), runs as nobody, serves cache-ops
/// over its text protocol, and loses every session across a container restart as it promises.
#[test]
fn memcached_in_containers_serves_cache_ops_and_loses_sessions_on_restart() {
    let _shared = shared();
    for network in ["host", "bridge"] {
        let dir = tempfile::tempdir().unwrap();
        let body = format!(
            r#"[matrix]
name = "mc-container-{network}"
[axes]
server = ["memcached@1.6"]
runtime = ["container"]
[runtime.container]
network = "{network}"
[server]
maxmemory = "32mb"
{CACHE_OPS}"#
        );
        let (code, text, results) = common::run_matrix(dir.path(), &body);
        assert_eq!(code, Some(0), "{network}: {text}");
        let r = common::find_cell(&results, "memcached@1.6/none/container");
        assert_eq!(r.verdict, Verdict::Pass, "{network}: {}", r.verdict_reason);
        let server = r.server.as_ref().unwrap();
        assert_eq!(server.identity.runtime, "container");
        assert_eq!(server.identity.network.as_deref(), Some(network));
        assert!(server
            .identity
            .image
            .as_deref()
            .unwrap()
            .starts_with("cachegate/memcached:1.6."));
        let total = r.total().unwrap();
        assert!(total.ok > 0, "{network}: no operation succeeded");
        assert_eq!(total.errors, 0, "{network}: {text}");
        assert!(labelled(&format!("cachegate.run={}", run_id(&results))).is_empty());
    }

    let dir = tempfile::tempdir().unwrap();
    let body = r#"[matrix]
name = "mc-container-sessions"
[axes]
server = ["memcached@1.6"]
runtime = ["process", "container"]
stack = ["django-5.2-mc"]
settings = ["cache"]
[stacks."django-5.2-mc"]
python = "3.11"
packages = ["django==5.2.*", "redis==5.2.*", "pymemcache==4.*"]
[settings.cache]
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
[settings.cache.CACHES.default]
BACKEND = "django.core.cache.backends.memcached.PyMemcacheCache"
[scenario]
kind = "session-persistence"
users = 6
restart = "graceful"
"#;
    let (code, text, results) = common::run_matrix(dir.path(), body);
    assert_eq!(code, Some(0), "{text}");
    for id in [
        "memcached@1.6/none/django-5.2-mc/cache",
        "memcached@1.6/none/container/django-5.2-mc/cache",
    ] {
        let r = common::find_cell(&results, id);
        assert_eq!(r.verdict, Verdict::Pass, "{id}: {}", r.verdict_reason);
        let p = r.check.as_ref().and_then(|c| c.persistence()).unwrap();
        // Six sessions were readable before the restart and none after it: the restart was real.
        assert_eq!((p.before, p.kept, p.unknown), (6, 0, 0), "{id}: {p:?}");
    }
    assert!(labelled(&format!("cachegate.run={}", run_id(&results))).is_empty());
}
