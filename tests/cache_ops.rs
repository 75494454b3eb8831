//! cache-ops against real servers: the numbers it reports must add up.

mod common;

use std::time::Duration;

use cachegate::results::latency::decode;
use cachegate::server::ServerProcess;
use common::*;

/// Rows of one operation kind: not "all", not the setup phase ("connect", "fill"), not a
/// lookup's "<op>:hit" / "<op>:miss" split.
fn is_operation_row(op: &str) -> bool {
    !["all", "connect", "fill"].contains(&op) && !op.contains(':')
}

/// The server's keys matching `pattern`, and a connection for more questions.
async fn keys_matching(
    proc: &ServerProcess,
    pattern: &str,
) -> (Vec<String>, redis::aio::MultiplexedConnection) {
    let client = redis::Client::open(proc.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    (keys, conn)
}

/// Counts, percentiles and histograms must be consistent, and the ops must really reach the server.
async fn check_sane_numbers(server: &str) {
    let bin = provision(server);
    let proc = ServerProcess::start(&spec(server, "none"), &bin)
        .await
        .unwrap();
    let cfg = cache_ops_config(
        "connections = 8\npipeline = 4\nops = 20000\nwarmup = \"200ms\"\nkeyspace = 500",
    );
    let out = run_cache_ops(&cfg, &proc, "t:sane:").await;

    assert!(out.passed, "{server}: {}", out.reason);
    assert_eq!(out.counts.errors, 0, "{server}: {:?}", out.errors);
    // Exactly the requested number of ops is measured; every op sent is accounted for.
    assert_eq!(out.counts.ok, 20_000);
    assert_eq!(
        out.counts.sent,
        out.counts.warmup + out.counts.ok + out.counts.errors
    );
    assert!(out.counts.warmup > 0, "a 200ms warm-up should see some ops");

    let total = out.ops.iter().find(|o| o.op == "all").unwrap();
    let per_op: u64 = out
        .ops
        .iter()
        .filter(|o| is_operation_row(&o.op))
        .map(|o| o.ok)
        .sum();
    assert_eq!(per_op, total.ok);
    let connect = out.ops.iter().find(|o| o.op == "connect").unwrap();
    assert_eq!(
        connect.ok, 8,
        "each connection is set up once, before the window"
    );
    for o in &out.ops {
        let l = &o.latency;
        assert!(
            l.min_us > 0.0 && l.min_us <= l.p50_us,
            "{server} {}: {l:?}",
            o.op
        );
        assert!(
            l.p50_us <= l.p90_us
                && l.p90_us <= l.p99_us
                && l.p99_us <= l.p999_us
                && l.p999_us <= l.max_us
        );
        assert_eq!(
            decode(&o.histogram).unwrap().len(),
            o.ok,
            "histogram holds every ok op"
        );
    }
    assert!(total.throughput > 0.0 && out.measured_seconds > 0.0);
    assert!((total.throughput * out.measured_seconds - 20_000.0).abs() < 1.0);
    let timeline_ok: u64 = out
        .timeline
        .iter()
        .filter(|p| !p.warmup)
        .map(|p| p.ok)
        .sum();
    assert!(timeline_ok <= 20_000 && timeline_ok > 0);

    // The keys exist on the server, under the run's prefix.
    let (keys, _) = keys_matching(&proc, "t:sane:*").await;
    assert!(
        keys.len() > 100 && keys.len() <= 1000,
        "{} keys",
        keys.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_6_2_numbers_add_up() {
    check_sane_numbers("redis@6.2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valkey_9_1_numbers_add_up() {
    check_sane_numbers("valkey@9.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_server_mid_run_counts_errors() {
    let bin = provision("redis@7.4");
    let proc = ServerProcess::start(&spec("redis@7.4", "none"), &bin)
        .await
        .unwrap();
    let pid = proc.pid().unwrap();
    let cfg = cache_ops_config(
        "connections = 4\nduration = \"2s\"\nwarmup = \"100ms\"\nop_timeout = \"200ms\"",
    );
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let out = run_cache_ops(&cfg, &proc, "t:kill:").await;
    killer.await.unwrap();

    assert!(!out.passed);
    assert!(out.counts.ok > 100, "ops before the kill succeed");
    assert!(out.counts.errors > 0, "ops after the kill fail");
    assert_eq!(
        out.counts.sent,
        out.counts.warmup + out.counts.ok + out.counts.errors
    );
    let kinds: Vec<&str> = out.errors.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds
            .iter()
            .all(|k| ["connection lost", "connection refused", "timeout"].contains(k)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"connection refused"),
        "reconnects are refused: {kinds:?}"
    );
    assert!(out.reason.contains("failed"), "{}", out.reason);
    // Each failure is timed: refused reconnects, lost connections and timeouts alike.
    let all = out.ops.iter().find(|o| o.op == "all").unwrap();
    let failed = all.failed_latency.as_ref().expect("failures are timed");
    assert_eq!(failed.count, out.counts.errors);
}

/// In open-loop mode a stalled server must show in the percentiles: ops scheduled during the
/// stall count from their intended send time. Closed-loop hides most of it (only the ops in flight
/// wait), which is exactly the coordinated-omission error the open model corrects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_holds_its_rate_and_sees_stalls() {
    let bin = provision("valkey@9.1");
    let proc = ServerProcess::start(&spec("valkey@9.1", "none"), &bin)
        .await
        .unwrap();
    let pid = proc.pid().unwrap() as i32;
    let stall = || async move {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        tokio::time::sleep(Duration::from_millis(400)).await;
        unsafe { libc::kill(pid, libc::SIGCONT) };
    };

    let open =
        cache_ops_config("connections = 4\nrate = 2000\nduration = \"2s\"\nwarmup = \"200ms\"");
    let stalled = tokio::spawn(stall());
    let out = run_cache_ops(&open, &proc, "t:open:").await;
    stalled.await.unwrap();
    assert!(out.passed, "{}", out.reason);
    let total = out.ops.iter().find(|o| o.op == "all").unwrap();
    // The schedule holds the rate: 2000/s over 2s.
    assert!(
        (3600..=4400).contains(&total.ok),
        "{} ops at 2000/s for 2s",
        total.ok
    );
    // ~800 of 4000 ops were due during the 400ms stall: p90 and max reflect it.
    assert!(total.latency.max_us > 300_000.0, "{:?}", total.latency);
    assert!(total.latency.p90_us > 50_000.0, "{:?}", total.latency);

    let closed = cache_ops_config("connections = 4\nduration = \"2s\"\nwarmup = \"200ms\"");
    let stalled = tokio::spawn(stall());
    let out = run_cache_ops(&closed, &proc, "t:closed:").await;
    stalled.await.unwrap();
    let total = out.ops.iter().find(|o| o.op == "all").unwrap();
    assert!(
        total.latency.max_us > 300_000.0,
        "the ops in flight waited: {:?}",
        total.latency
    );
    assert!(
        total.latency.p90_us < 50_000.0,
        "closed loop hides the stall: {:?}",
        total.latency
    );
}

/// More connections than the usual 1024 soft limit: the limit is raised, every connection is set
/// up before the measured window (its own "connect" row, not part of "all"), and no recorded
/// latency exceeds op_timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_connections_are_set_up_first_and_stay_within_op_timeout() {
    cachegate::fd_limit::ensure_room_for(2000).unwrap();
    let bin = provision("redis@7.4");
    let proc = ServerProcess::start(&spec("redis@7.4", "none"), &bin)
        .await
        .unwrap();
    let cfg = cache_ops_config(
        "connections = 2000\nduration = \"2s\"\nwarmup = \"500ms\"\nop_timeout = \"3s\"",
    );
    let out = run_cache_ops(&cfg, &proc, "t:many:").await;

    let connect = out.ops.iter().find(|o| o.op == "connect").unwrap();
    assert_eq!((connect.ok, connect.errors), (2000, 0), "{:?}", out.errors);
    assert_eq!(decode(&connect.histogram).unwrap().len(), 2000);
    let all = out.ops.iter().find(|o| o.op == "all").unwrap();
    let per_op: u64 = out
        .ops
        .iter()
        .filter(|o| is_operation_row(&o.op))
        .map(|o| o.ok)
        .sum();
    assert_eq!(per_op, all.ok, "connects are not operations");
    assert_eq!(
        out.counts.sent,
        out.counts.warmup + out.counts.ok + out.counts.errors
    );
    assert!(out.counts.ok > 0, "{}", out.reason);
    for o in out.ops.iter().filter(|o| o.op != "connect") {
        assert!(
            o.latency.max_us <= 3_000_000.0,
            "{}: {:?} above op_timeout",
            o.op,
            o.latency
        );
    }
    let late: u64 = out
        .errors
        .iter()
        .filter(|e| e.kind.starts_with("timeout"))
        .map(|e| e.count)
        .sum();
    assert_eq!(late + all.ok, out.counts.ok + out.counts.errors);
}

/// A cell whose connections cannot fit under the hard file-descriptor limit is an infrastructure
/// ERROR naming the limit, and no load is sent (issue 19 item 7): run the real binary with the
/// limit lowered to 512 for a 2,000-connection cell.
#[test]
fn a_cell_beyond_the_fd_hard_limit_is_an_error_naming_it() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.toml"),
        "[matrix]\nname = \"fd\"\n[axes]\nserver = [\"redis@7.4\"]\n[scenario]\nkind = \"cache-ops\"\nconnections = 2000\nduration = \"1s\"\n",
    )
    .unwrap();
    let mut cmd = cachegate();
    cmd.args(["run", "--no-progress", "--out", "out", "m.toml"])
        .current_dir(dir.path());
    // SAFETY: setrlimit is async-signal-safe; it only lowers this child's limit.
    unsafe {
        cmd.pre_exec(|| {
            let l = libc::rlimit {
                rlim_cur: 512,
                rlim_max: 512,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let results = cachegate::results::store::read_jsonl(
        &only_run_dir(&dir.path().join("out")).join("results.jsonl"),
    )
    .unwrap();
    let r = &results[0];
    assert_eq!(r.verdict, cachegate::results::Verdict::Error);
    let why = r.infra_error.as_deref().unwrap_or_default();
    assert!(
        why.contains("file-descriptor limit") && why.contains("is 512"),
        "{why}"
    );
    assert!(text.contains("file-descriptor limit"), "{text}");
    assert_eq!(r.counts.sent, 0, "no load was sent");
    assert!(r.server.is_none(), "no server was started");
}

/// The fill phase and hit/miss accounting (issue 16 item 2): a GET-only run after filling the
/// keyspace reads only hits, each in the "get:hit" histogram; the same run without a fill reads
/// only misses. The fill's keys are really on the server, with values of the configured sizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_only_after_a_fill_hits_and_without_a_fill_misses() {
    let bin = provision("redis@7.4");
    let proc = ServerProcess::start(&spec("redis@7.4", "none"), &bin)
        .await
        .unwrap();
    let fields = "connections = 4\nops = 4000\nwarmup = \"0s\"\nkeyspace = 500\nvalue_size = [10, 50]\nmix = { get = 1 }";
    let filled = run_cache_ops(
        &cache_ops_config(&format!("{fields}\nfill = 500")),
        &proc,
        "t:filled:",
    )
    .await;
    assert!(filled.passed, "{}", filled.reason);
    let row = |out: &cachegate::scenario::ScenarioOutput, op: &str| {
        out.ops.iter().find(|o| o.op == op).cloned()
    };
    let fill = row(&filled, "fill").expect("a fill row");
    assert_eq!((fill.ok, fill.errors), (500, 0));
    let get = row(&filled, "get").unwrap();
    assert_eq!((get.hits, get.misses), (Some(4000), Some(0)));
    assert_eq!(get.hit_ratio(), Some(1.0));
    assert_eq!(row(&filled, "all").unwrap().hit_ratio(), Some(1.0));
    let hit = row(&filled, "get:hit").expect("a hit histogram");
    assert_eq!(decode(&hit.histogram).unwrap().len(), 4000);
    assert!(row(&filled, "get:miss").is_none());
    assert!(
        filled.reason.contains("hit ratio 1.000"),
        "{}",
        filled.reason
    );
    // The fill is outside the measured window: only the 4000 GETs are measured.
    assert_eq!(filled.counts.ok, 4000);

    let (keys, mut conn) = keys_matching(&proc, "t:filled:*").await;
    assert_eq!(keys.len(), 500);
    for k in keys.iter().take(20) {
        let len: usize = redis::cmd("STRLEN")
            .arg(k)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((10..=50).contains(&len), "{k}: {len} bytes");
    }

    let empty = run_cache_ops(&cache_ops_config(fields), &proc, "t:empty:").await;
    assert!(empty.passed, "{}", empty.reason);
    assert!(row(&empty, "fill").is_none());
    let get = row(&empty, "get").unwrap();
    assert_eq!((get.hits, get.misses), (Some(0), Some(4000)));
    assert_eq!(get.hit_ratio(), Some(0.0));
    let miss = row(&empty, "get:miss").expect("a miss histogram");
    assert_eq!(decode(&miss.histogram).unwrap().len(), 4000);
    assert!(row(&empty, "get:hit").is_none());
}

/// The versions that come from other sources (an older redis-stack wheel with OpenSSL 1.1 beside
/// it, Debian bookworm-backports, Debian trixie through its own loader) install through the real
/// CLI, report their version, and serve a short cache-ops cell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_7_2_8_0_and_valkey_8_0_install_and_serve_cache_ops() {
    let dir = tempfile::tempdir().unwrap();
    let servers = ["redis@7.2", "redis@8.0", "valkey@8.0"];
    let mut args = vec!["servers", "install"];
    args.extend(servers);
    let (code, text) = run_cli(dir.path(), &args);
    assert_eq!(code, Some(0), "{text}");
    for (server, version) in [
        ("redis@7.2", "7.2.4"),
        ("redis@8.0", "8.0.2"),
        ("valkey@8.0", "8.0.1"),
    ] {
        assert!(
            text.contains(&format!("{server}: {version} ")),
            "{server}: {text}"
        );
        check_sane_numbers(server).await;
    }
    // `servers list` shows every line ready, and at least 12 distinct minor lines.
    let (code, list) = run_cli(dir.path(), &["servers", "list"]);
    assert_eq!(code, Some(0), "{list}");
    for server in servers {
        let row = list
            .lines()
            .find(|l| l.starts_with(&format!("{server} ")))
            .unwrap_or_else(|| panic!("no {server} in {list}"));
        assert!(row.contains(" ready "), "{row}");
    }
    let lines: std::collections::BTreeSet<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| s.starts_with("redis@") || s.starts_with("valkey@"))
        .collect();
    assert!(lines.len() >= 12, "{lines:?}");
}

/// A Debian-archive install writes only into the cache: the system's apt lists and package
/// cache are untouched, and the cache holds the binary and its libraries.
#[test]
fn a_debian_archive_install_stays_inside_the_cache() {
    let listing = |dir: &str| -> Vec<(String, std::time::SystemTime)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            e.metadata().and_then(|m| m.modified()).unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let system = [
        "/var/lib/apt/lists",
        "/var/cache/apt/archives",
        "/var/lib/dpkg",
    ];
    let before: Vec<_> = system.iter().map(|d| listing(d)).collect();
    let cache = tempfile::tempdir().unwrap();
    let out = cachegate()
        .args(["servers", "install", "valkey@8.0"])
        .env("CACHEGATE_CACHE", cache.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let after: Vec<_> = system.iter().map(|d| listing(d)).collect();
    assert_eq!(before, after, "the system's apt state changed");
    let entry = cache.path().join("servers/valkey-8.0.1");
    assert!(entry.join("bin/valkey-server").is_file());
    assert!(entry.join("lib/libjemalloc.so.2").exists());
    // Only the finished install is left: the private apt folder went with the staging dir.
    let left: Vec<_> = std::fs::read_dir(cache.path().join("servers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["valkey-8.0.1"], "{left:?}");
}

/// Failed operations (here: OOM answers under noeviction) keep their latency in the failed
/// histogram and in what users waited, per operation and in "all", as HTTP failures do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_operations_are_timed_like_successful_ones() {
    let bin = provision("redis@7.4");
    let mut spec = spec("redis@7.4", "none");
    spec.settings.maxmemory = Some("2mb".into());
    spec.settings.maxmemory_policy = Some("noeviction".into());
    let proc = ServerProcess::start(&spec, &bin).await.unwrap();
    let cfg = cache_ops_config(
        "connections = 2\nops = 3000\nwarmup = \"0s\"\nkeyspace = 100000\nvalue_size = 8192\n\
         mix = { set = 1 }\nmax_error_rate = 1.0",
    );
    let out = run_cache_ops(&cfg, &proc, "t:oom:").await;
    let row = |op: &str| out.ops.iter().find(|o| o.op == op).unwrap();
    let (set, all) = (row("set"), row("all"));
    assert!(set.ok > 0 && set.errors > 1000, "{set:?}");
    assert!(
        out.errors.iter().any(|e| e.kind == "server error OOM"),
        "{:?}",
        out.errors
    );
    for o in [set, all] {
        let failed = o.failed_latency.as_ref().expect("failures are timed");
        assert_eq!(
            failed.count, o.errors,
            "{}: every failure has its latency",
            o.op
        );
        assert!(failed.min_us > 0.0 && failed.p50_us <= failed.max_us);
        assert_eq!(o.waited().count, o.ok + o.errors, "{}", o.op);
    }
}

/// memcached's `stats` counter `name`, over its text protocol.
fn memcached_stat(port: u16, name: &str) -> u64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"stats\r\n").unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while !text.ends_with("END\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "memcached closed the connection");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// cache-ops over memcached's text protocol: the counts add up as on Redis, the histograms hold
/// every op, and memcached itself counted the commands (its `stats`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_numbers_add_up_and_reach_the_server() {
    let server = "memcached@1.6";
    let bin = provision(server);
    assert_eq!(bin.version, "1.6.18");
    let proc = ServerProcess::start(&spec(server, "none"), &bin)
        .await
        .unwrap();
    let cfg = cache_ops_config(
        "connections = 8\npipeline = 4\nops = 20000\nwarmup = \"200ms\"\nkeyspace = 500",
    );
    let out = run_cache_ops(&cfg, &proc, "t:mc:").await;
    assert!(out.passed, "{}", out.reason);
    assert_eq!(out.counts.errors, 0, "{:?}", out.errors);
    assert_eq!(out.counts.ok, 20_000);
    assert_eq!(
        out.counts.sent,
        out.counts.warmup + out.counts.ok + out.counts.errors
    );
    let row = |op: &str| out.ops.iter().find(|o| o.op == op).unwrap();
    let per_op: u64 = out
        .ops
        .iter()
        .filter(|o| is_operation_row(&o.op))
        .map(|o| o.ok)
        .sum();
    assert_eq!(per_op, row("all").ok);
    for o in out.ops.iter().filter(|o| is_operation_row(&o.op)) {
        assert_eq!(decode(&o.histogram).unwrap().len(), o.ok, "{}", o.op);
    }
    // Lookups both hit and miss: SETs fill the keyspace as GETs read it.
    assert!(row("get:hit").ok > 0 && row("get:miss").ok > 0);
    // memcached saw every GET (a `get` each) and every SET (a `set`, plus an `add` per INCR).
    let gets = memcached_stat(proc.port(), "cmd_get");
    let sets = memcached_stat(proc.port(), "cmd_set");
    let sent_gets = row("get").ok;
    assert!(
        gets >= sent_gets,
        "{gets} gets at the server, {sent_gets} measured"
    );
    assert!(sets >= row("set").ok + row("incr").ok, "{sets}");
    assert!(memcached_stat(proc.port(), "curr_items") > 100);
}
