//! The process runtime's knobs, on real servers: persistence on restart, auth, memory policy,
//! and that nothing outlives its owner.

mod common;

use cachegate::server::{ServerProcess, ServerSettings, StopKind};
use common::*;

async fn set_key(url: &str, key: &str) {
    let mut c = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("v")
        .query_async(&mut c)
        .await
        .unwrap();
}

async fn key_exists(url: &str, key: &str) -> bool {
    let mut c = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<i64>(&mut c)
        .await
        .unwrap()
        == 1
}

/// Write a key, stop the server the given way, start it again on the same data dir.
async fn survives(server: &str, persistence: &str, stop: StopKind) -> bool {
    let bin = provision(server);
    let mut proc = ServerProcess::start(&spec(server, persistence), &bin)
        .await
        .unwrap();
    let port = proc.port();
    set_key(&proc.url(), "k").await;
    proc.stop(stop).await.unwrap();
    assert!(!proc.is_running());
    proc.restart(None).await.unwrap();
    assert_eq!(proc.port(), port, "restarts keep the port");
    key_exists(&proc.url(), "k").await
}

#[tokio::test]
async fn persistence_modes_behave_on_restart() {
    // Redis <= 6.2 writes appendonly.aof; 7+ writes appendonlydir/: both layouts are exercised.
    for server in ["redis@6.2", "valkey@9.1"] {
        assert!(
            !survives(server, "none", StopKind::Graceful).await,
            "{server}: none keeps nothing"
        );
        assert!(
            survives(server, "rdb", StopKind::Graceful).await,
            "{server}: rdb saves on shutdown"
        );
        assert!(
            !survives(server, "rdb", StopKind::Kill).await,
            "{server}: rdb loses unsaved keys on SIGKILL"
        );
        assert!(
            !survives(server, "rdb", StopKind::NoSave).await,
            "{server}: SHUTDOWN NOSAVE skips the snapshot"
        );
        assert!(
            survives(server, "aof-always", StopKind::Kill).await,
            "{server}: aof always survives SIGKILL"
        );
        assert!(
            survives(server, "none", StopKind::Save).await,
            "{server}: SHUTDOWN SAVE snapshots even without save points"
        );
    }
}

#[tokio::test]
async fn requirepass_is_enforced_and_used() {
    let bin = provision("redis@7.4");
    let mut s = spec("redis@7.4", "none");
    s.settings.requirepass = Some("s3cret".into());
    let proc = ServerProcess::start(&s, &bin).await.unwrap();
    assert!(proc.url().contains(":s3cret@"));
    set_key(&proc.url(), "k").await;
    let anonymous = format!("redis://127.0.0.1:{}/", proc.port());
    let mut c = redis::Client::open(anonymous)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let err = redis::cmd("GET")
        .arg("k")
        .query_async::<Option<String>>(&mut c)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NOAUTH"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_ops_authenticates_and_reports_a_wrong_password() {
    let bin = provision("valkey@9.1");
    let mut s = spec("valkey@9.1", "none");
    s.settings.requirepass = Some("s3cret".into());
    let mut proc = ServerProcess::start(&s, &bin).await.unwrap();
    let cfg = cache_ops_config("connections = 2\nops = 200\nwarmup = \"0s\"");
    let out = run_cache_ops(&cfg, &proc, "t:auth:").await;
    assert!(out.passed, "{}", out.reason);

    // Same server restarted with another password: the harness's old one is refused.
    let mut other = s.clone();
    other.settings.requirepass = Some("changed".into());
    let endpoint = proc.endpoint();
    proc.restart(Some(other)).await.unwrap();
    let out = cachegate::scenario::cache_ops::run(
        &cache_ops_config("connections = 1\nops = 5\nwarmup = \"0s\""),
        cachegate::scenario::cluster::Target::Single(endpoint.clone()),
        "t:auth:",
        Default::default(),
        Default::default(),
    )
    .await;
    assert!(!out.passed);
    assert_eq!(out.errors[0].kind, "auth failed", "{:?}", out.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noeviction_at_maxmemory_counts_oom_errors() {
    let bin = provision("valkey@8.1");
    let mut s = spec("valkey@8.1", "none");
    s.settings = ServerSettings {
        maxmemory: Some("2mb".into()),
        maxmemory_policy: Some("noeviction".into()),
        ..Default::default()
    };
    let proc = ServerProcess::start(&s, &bin).await.unwrap();
    let cfg = cache_ops_config(
        "connections = 4\nops = 3000\nwarmup = \"0s\"\nkeyspace = 100000\nvalue_size = 4096\n[mix]\nset = 1",
    );
    let out = run_cache_ops(&cfg, &proc, "t:oom:").await;
    assert!(!out.passed);
    let oom = out
        .errors
        .iter()
        .find(|e| e.kind == "server error OOM")
        .expect("OOM errors recorded");
    assert!(oom.example.contains("maxmemory"), "{}", oom.example);
    assert!(out.counts.ok > 0 && out.counts.errors > 0);
    assert_eq!(out.counts.ok + out.counts.errors, 3000);
}

#[tokio::test]
async fn dropping_a_server_kills_it_and_bad_starts_report_the_log() {
    let bin = provision("redis@6.0");
    let proc = ServerProcess::start(&spec("redis@6.0", "none"), &bin)
        .await
        .unwrap();
    let pid = proc.pid().unwrap();
    assert!(pid_alive(pid));
    drop(proc);
    assert!(!pid_alive(pid), "server {pid} still running after drop");

    let mut s = spec("redis@6.0", "none");
    s.settings.extra = vec!["no-such-directive yes".into()];
    let err = ServerProcess::start(&s, &bin)
        .await
        .err()
        .expect("a bad config cannot start");
    let text = err.to_string();
    assert!(
        text.contains("exited during start-up") && text.contains("no-such-directive"),
        "{text}"
    );
    assert!(leaked_servers().is_empty(), "{:?}", leaked_servers());
}
