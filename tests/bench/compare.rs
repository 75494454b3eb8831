//! cachegate next to the reference tools, on the same server, same settings, same machine:
//!
//! 1. raw ops: cachegate `cache-ops` vs `redis-benchmark` (Debian redis-tools) for GET and SET,
//!    50 connections, pipeline 1 and 16: throughput ratio, client CPU per operation, p50/p99, and
//!    the server's CPU (is the server the bottleneck?);
//!    The same over TLS (`tls`), against redis-benchmark's OpenSSL client;
//! 2. HTTP: the login-flow generator vs `wrk` on the bundled app's authenticated read endpoint,
//!    same connection count, in rounds of wrk, cachegate, wrk: requests/s ratio, client and app
//!    CPU per request, and wrk against itself (the machine's noise). Once on the app as the
//!    matrices run it (2 sync workers) and once with keep-alive in one gthread worker;
//! 3. turnaround: server start to first operation;
//! 4. memory: RSS over a long closed run (CACHEGATE_BENCH_LONG=1: 10 minutes, >= 10M ops);
//! 5. connection sweep: 50 to 10,000 connections, cachegate's default mix and GET only against
//!    `redis-benchmark -t get` on the same server (redis 7.4, `maxclients 20000`): ratio, client
//!    CPU per op, each side's peak RSS (CACHEGATE_BENCH_SWEEP=50,500 picks the counts).
//!
//! Run: `cargo bench --bench compare` (needs `apt-get install redis-tools wrk`). Prints tables of
//! ratios; asserts nothing about timings. CACHEGATE_BENCH_ONLY=raw|tls|http|turnaround|memory|sweep runs one
//! part, CACHEGATE_BENCH_REPEATS (default 3) sets the raw pairs' repeats, CACHEGATE_BENCH_HTTP_ROUNDS
//! (default 10) the HTTP rounds, CACHEGATE_BENCH_HTTP_READS the reads per flow (1000 / 300),
//! CACHEGATE_BENCH_LONG=1 makes the memory run 10 minutes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachegate::config::ScenarioParams;
use cachegate::scenario::cache_ops::{self, CacheOpsConfig};
use cachegate::scenario::login_flow::{self, LoginFlowConfig};
use cachegate::server::{
    Persistence, ProvisionedServer, Provisioner, ServerProcess, ServerSettings, ServerSpec,
};
use cachegate::target::app::{AppProcess, Workers};
use cachegate::target::TargetSection;
use tokio_util::sync::CancellationToken;

const SERVER: &str = "redis@7.0";
const CONNECTIONS: u32 = 50;
/// Operations per side at pipeline 1; pipelined runs send `pipeline` times fewer round trips,
/// so they get 5x the operations to last long enough (several seconds) to measure.
const OPS: u64 = 1_000_000;

fn ops_for(pipeline: u32) -> u64 {
    if pipeline > 1 {
        OPS * 5
    } else {
        OPS
    }
}

/// CPU seconds (user + system) of this process, or of its waited-for children.
fn cpu(who: i32) -> f64 {
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut u);
        u
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// CPU seconds a process has used so far, from /proc.
fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let f = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (f(11) + f(12)) / ticks
}

/// The server every part runs against: SERVER, no persistence, default settings.
fn bench_spec() -> ServerSpec {
    ServerSpec {
        server: SERVER.parse().unwrap(),
        persistence: Persistence::none(),
        settings: ServerSettings::default(),
        mode: Default::default(),
        secrets: None,
    }
}

/// A number from the environment (a bench knob), or `default`.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Median of a non-empty list.
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    (v[(n - 1) / 2] + v[n / 2]) / 2.0
}

/// (smallest, largest) of a list.
fn range(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)))
}

/// CPU seconds of a process and its direct children (gunicorn's master and its workers).
fn tree_cpu(pid: u32) -> f64 {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    proc_cpu(pid)
        + children
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .map(proc_cpu)
            .sum::<f64>()
}

/// A size field of /proc/self/status in KiB: `VmRSS` (now) or `VmHWM` (peak).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn params(toml_text: &str) -> ScenarioParams {
    toml::from_str(toml_text).expect("bench params parse")
}

struct Side {
    ops_per_s: f64,
    cpu_us_per_op: f64,
    p50_ms: f64,
    p99_ms: f64,
    server_cpu_pct: f64,
}

async fn cachegate_side(server: &ServerProcess, op: &str, pipeline: u32) -> Side {
    let cfg = CacheOpsConfig::resolve(&params(&format!(
        "kind = \"cache-ops\"\nconnections = {CONNECTIONS}\npipeline = {pipeline}\nops = {}\nwarmup = \"0s\"\nkeyspace = 10000\nvalue_size = 100\nmix = {{ {op} = 1 }}",
        ops_for(pipeline)
    )))
    .unwrap();
    let pid = server.pid().unwrap();
    let (c0, s0, t0) = (cpu(libc::RUSAGE_SELF), proc_cpu(pid), Instant::now());
    let out = cache_ops::run(
        &cfg,
        cachegate::scenario::cluster::Target::Single(server.endpoint()),
        "bench:",
        CancellationToken::new(),
        Arc::new(AtomicU64::new(0)),
    )
    .await;
    let (c1, s1, wall) = (
        cpu(libc::RUSAGE_SELF),
        proc_cpu(pid),
        t0.elapsed().as_secs_f64(),
    );
    let all = out.ops.iter().find(|o| o.op == "all").unwrap();
    assert_eq!(out.counts.errors, 0, "{:?}", out.errors);
    Side {
        ops_per_s: all.throughput,
        cpu_us_per_op: (c1 - c0) * 1e6 / out.counts.ok as f64,
        p50_ms: all.latency.p50_us / 1000.0,
        p99_ms: all.latency.p99_us / 1000.0,
        server_cpu_pct: (s1 - s0) / wall * 100.0,
    }
}

fn redis_benchmark_side(server: &ServerProcess, op: &str, pipeline: u32) -> Side {
    let pid = server.pid().unwrap();
    let (c0, s0, t0) = (cpu(libc::RUSAGE_CHILDREN), proc_cpu(pid), Instant::now());
    let mut cmd = Command::new("redis-benchmark");
    if let Some(tls) = server.spec().tls() {
        // The same CA the harness trusts; both verify the server certificate.
        cmd.arg("--tls").arg("--cacert").arg(tls.path("ca.crt"));
    }
    let out = cmd
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string()])
        .args([
            "-c",
            &CONNECTIONS.to_string(),
            "-n",
            &ops_for(pipeline).to_string(),
            "-P",
            &pipeline.to_string(),
        ])
        .args(["-t", op, "-d", "100", "-r", "10000", "--csv"])
        .stdin(Stdio::null())
        .output()
        .expect("redis-benchmark runs (apt-get install redis-tools)");
    let (c1, s1, wall) = (
        cpu(libc::RUSAGE_CHILDREN),
        proc_cpu(pid),
        t0.elapsed().as_secs_f64(),
    );
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("\"{}\"", op.to_uppercase())))
        .expect("a CSV row");
    let cols: Vec<f64> = row
        .split(',')
        .skip(1)
        .map(|c| c.trim_matches('"').parse().unwrap_or(0.0))
        .collect();
    Side {
        ops_per_s: cols[0],
        cpu_us_per_op: (c1 - c0) * 1e6 / ops_for(pipeline) as f64,
        p50_ms: cols[3],
        p99_ms: cols[5],
        server_cpu_pct: (s1 - s0) / wall * 100.0,
    }
}

/// The run whose throughput is the median of `runs` (odd count), so its other columns belong to
/// the same run.
fn median_run(mut runs: Vec<Side>) -> Side {
    runs.sort_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s));
    runs.swap_remove(runs.len() / 2)
}

/// `tls`: over TLS (the `tls` transport's throwaway certificates; cachegate with rustls,
/// redis-benchmark with OpenSSL), which is how the hot loop's TLS stack was chosen.
async fn raw_ops(bin: &ProvisionedServer, tls: bool) {
    // This machine's speed drifts between runs (shared cores), so each pair runs REPEATS times,
    // alternating which tool goes first, and the table shows each side's median run.
    let repeats: usize = env_or("CACHEGATE_BENCH_REPEATS", 3);
    let over = if tls {
        "over TLS (cachegate: tokio-rustls with ring; redis-benchmark: OpenSSL), "
    } else {
        ""
    };
    println!("\n## Raw ops: cachegate cache-ops vs redis-benchmark ({SERVER}, {over}{CONNECTIONS} connections, {OPS} ops at pipeline 1 and {} at 16, 100-byte values, 10k keys; median of {repeats} alternating runs each)\n", ops_for(16));
    println!("| op | pipeline | cachegate ops/s | redis-benchmark ops/s | ratio | ratio range | client CPU µs/op (cg / rb) | p50 ms (cg / rb) | p99 ms (cg / rb) | server CPU % (cg / rb) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for pipeline in [1, 16] {
        for op in ["get", "set"] {
            let (mut cgs, mut rbs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            for rep in 0..repeats {
                // A fresh server for each pair, so neither side inherits the other's dataset.
                let mut spec = bench_spec();
                if tls {
                    let opts = cachegate::server::tls::TlsOptions::default();
                    spec.secrets =
                        Some(cachegate::server::acl::Secrets::for_cell(Some(&opts), &[]).unwrap());
                }
                let server = ServerProcess::start(&spec, bin).await.unwrap();
                let (cg, rb) = if rep % 2 == 0 {
                    let rb = redis_benchmark_side(&server, op, pipeline);
                    (cachegate_side(&server, op, pipeline).await, rb)
                } else {
                    let cg = cachegate_side(&server, op, pipeline).await;
                    (cg, redis_benchmark_side(&server, op, pipeline))
                };
                ratios.push(cg.ops_per_s / rb.ops_per_s);
                cgs.push(cg);
                rbs.push(rb);
            }
            let (cg, rb) = (median_run(cgs), median_run(rbs));
            let (lo, hi) = range(&ratios);
            println!(
                "| {op} | {pipeline} | {:.0} | {:.0} | **{:.2}** | {lo:.2}–{hi:.2} | {:.2} / {:.2} | {:.3} / {:.3} | {:.3} / {:.3} | {:.0} / {:.0} |",
                cg.ops_per_s, rb.ops_per_s, cg.ops_per_s / rb.ops_per_s, cg.cpu_us_per_op, rb.cpu_us_per_op, cg.p50_ms, rb.p50_ms, cg.p99_ms, rb.p99_ms, cg.server_cpu_pct, rb.server_cpu_pct
            );
        }
    }
}

async fn http(bin: &ProvisionedServer) {
    let users = 8u32;
    let spec = bench_spec();
    let server = ServerProcess::start(&spec, bin).await.unwrap();
    let cache = cachegate::server::provision::default_cache_dir();
    let stack_spec: cachegate::stack::StackSpec =
        toml::from_str("python = \"3.11\"\npackages = [\"django==5.2.*\", \"redis==5.2.*\"]")
            .unwrap();
    let stack = cachegate::stack::provision("django-5.2", &stack_spec, &cache, None).unwrap();
    let settings: toml::Table = toml::from_str(
        "SESSION_ENGINE = \"django.contrib.sessions.backends.cache\"\nPASSWORD_HASHERS = [\"django.contrib.auth.hashers.MD5PasswordHasher\"]\n[CACHES.default]\nBACKEND = \"django.core.cache.backends.redis.RedisCache\"",
    )
    .unwrap();
    let settings = cachegate::target::django_settings(
        &settings,
        &cachegate::server::deployment::Addresses::standalone(&server),
    )
    .unwrap();
    let code = cachegate::target::app::AppCode::of(&TargetSection::default()).unwrap();
    // The bundled app as the matrices run it (sync workers: a new connection per request, for
    // both tools, and the load generator shares the 2 cores with the app), then with keep-alive
    // in one gthread worker: neither tool reconnects, and Python's GIL holds the app to about one
    // core, so the other core is the load generator's. (Two gthread workers split 8 keep-alive
    // connections unevenly, at random, and halve or double throughput between runs.)
    // Reads per flow: enough that /me/ is >= 99 % of the flow's requests at the sync app's rate
    // (register and login cost the app several /me/s each), fewer at the GIL-bound app's.
    for (workers, what, reads) in [
        (
            Workers {
                processes: 2,
                threads: 1,
            },
            "2 sync workers (a connection per request)",
            1000,
        ),
        (
            Workers {
                processes: 1,
                threads: 8,
            },
            "1 gthread worker x 8 threads (keep-alive; one core by the GIL)",
            300,
        ),
    ] {
        let target = TargetSection {
            workers: std::num::NonZeroU32::new(workers.processes),
            threads: std::num::NonZeroU32::new(workers.threads),
            ..Default::default()
        };
        let app = AppProcess::start(&stack, &code, &target, &settings)
            .await
            .unwrap();
        http_rounds(app, users, what, reads).await;
    }
}

/// Rounds of wrk, the login flow and wrk again against one running app; prints a table.
async fn http_rounds(mut app: AppProcess, users: u32, what: &str, reads: u32) {
    let target = TargetSection::default();

    // wrk on /me/ with one logged-in session cookie.
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .build()
        .unwrap();
    let base = app.base_url();
    let token = client
        .get(format!("{base}/csrf/"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["csrftoken"]
        .as_str()
        .unwrap()
        .to_string();
    let form = [("username", "benchuser"), ("password", "bench-pw-1")];
    client
        .post(format!("{base}/register/"))
        .header("X-CSRFToken", &token)
        .form(&form)
        .send()
        .await
        .unwrap();
    client
        .post(format!("{base}/login/"))
        .header("X-CSRFToken", &token)
        .form(&form)
        .send()
        .await
        .unwrap();
    use reqwest::cookie::CookieStore;
    let cookie = jar
        .cookies(&format!("{base}/me/").parse().unwrap())
        .unwrap();
    let cookie = cookie.to_str().unwrap().to_string();
    // The login flow, shaped to be almost all authenticated reads of the same endpoint, with
    // every user started at once as wrk starts its connections. Short rounds, so that this VM's
    // drifting speed (±20 % between minutes) falls on both tools alike.
    let reads: u32 = env_or("CACHEGATE_BENCH_HTTP_READS", reads);
    let cfg = LoginFlowConfig::resolve(&params(&format!(
        "kind = \"login-flow\"\nusers = {users}\niterations = 1\nreads = {reads}\nhatch_rate = 1000"
    )))
    .unwrap();
    let repeats: usize = env_or("CACHEGATE_BENCH_HTTP_ROUNDS", 10);
    let app_pid = app.pid().expect("the app runs");
    println!("\n## HTTP: login-flow generator vs wrk on GET /me/ (bundled app, {what}, {users} connections, {repeats} rounds of wrk, cachegate, wrk)\n");
    println!("| round | wrk before / after requests/s | cachegate requests/s | ratio to the wrk mean | wrk after / before (noise) | client CPU ms per 1000 requests (cg / wrk) | app CPU ms per 1000 requests (cg / wrk) | share of /me/ in the flow |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    let mut noise = Vec::new();
    let (mut cg_cpu, mut wrk_cpu, mut cg_app, mut wrk_app) = (vec![], vec![], vec![], vec![]);
    for rep in 0..repeats {
        // wrk on both sides of each cachegate run: the ratio is against their mean, so a drift
        // of the machine's speed during the round cancels, and wrk against itself shows how
        // much two runs of one tool differ here.
        let before = wrk_side(&base, &cookie, users, app_pid);
        let flow = flow_side(&cfg, &base, &target, rep, app_pid).await;
        let after = wrk_side(&base, &cookie, users, app_pid);
        let wrk_mean = (before.rps + after.rps) / 2.0;
        ratios.push(flow.rps / wrk_mean);
        noise.push(after.rps / before.rps);
        cg_cpu.push(flow.client_ms_per_1000());
        wrk_cpu.push((before.client_ms_per_1000() + after.client_ms_per_1000()) / 2.0);
        cg_app.push(flow.app_ms_per_1000());
        wrk_app.push((before.app_ms_per_1000() + after.app_ms_per_1000()) / 2.0);
        println!(
            "| {} | {:.0} / {:.0} | {:.0} | {:.2} | {:.2} | {:.1} / {:.1} | {:.0} / {:.0} | {:.1}% |",
            rep + 1,
            before.rps,
            after.rps,
            flow.rps,
            ratios[rep],
            noise[rep],
            cg_cpu[rep],
            wrk_cpu[rep],
            cg_app[rep],
            wrk_app[rep],
            flow.me_share * 100.0
        );
    }
    app.stop(None).await;
    let (lo, hi) = range(&ratios);
    let (noise_lo, noise_hi) = range(&noise);
    println!(
        "\nratio cachegate / wrk, median of {repeats} rounds: **{:.2}** (range {lo:.2}–{hi:.2}); wrk against itself: median {:.2} (range {noise_lo:.2}–{noise_hi:.2}); client CPU ms per 1000 requests, median: {:.1} cachegate / {:.1} wrk; app CPU ms per 1000 requests, median: {:.0} / {:.0}",
        median(&ratios),
        median(&noise),
        median(&cg_cpu),
        median(&wrk_cpu),
        median(&cg_app),
        median(&wrk_app),
    );
}

/// One side of the HTTP comparison: what was measured, per-request figures derived from it.
struct HttpSide {
    rps: f64,
    requests: f64,
    /// CPU seconds the load generator used.
    client_cpu: f64,
    /// CPU seconds the app (gunicorn master and workers) used meanwhile: tells whether the two
    /// tools' requests cost the server the same.
    app_cpu: f64,
    /// Share of the requests that went to /me/.
    me_share: f64,
}

impl HttpSide {
    fn client_ms_per_1000(&self) -> f64 {
        self.client_cpu * 1e6 / self.requests
    }

    fn app_ms_per_1000(&self) -> f64 {
        self.app_cpu * 1e6 / self.requests
    }
}

/// wrk for 4 s on /me/ with a logged-in session cookie.
fn wrk_side(base: &str, cookie: &str, users: u32, app_pid: u32) -> HttpSide {
    let a0 = tree_cpu(app_pid);
    let c0 = cpu(libc::RUSAGE_CHILDREN);
    let wrk = Command::new("wrk")
        .args(["-t1", &format!("-c{users}"), "-d4s", "--latency", "-H"])
        .arg(format!("Cookie: {cookie}"))
        .arg(format!("{base}/me/"))
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let client_cpu = cpu(libc::RUSAGE_CHILDREN) - c0;
    let app_cpu = tree_cpu(app_pid) - a0;
    let text = String::from_utf8_lossy(&wrk.stdout);
    let rps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("wrk prints Requests/sec");
    let requests: f64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(1.0);
    HttpSide {
        rps,
        requests,
        client_cpu,
        app_cpu,
        me_share: 1.0,
    }
}

/// One login-flow run.
async fn flow_side(
    cfg: &LoginFlowConfig,
    base: &str,
    target: &TargetSection,
    rep: usize,
    app_pid: u32,
) -> HttpSide {
    let a0 = tree_cpu(app_pid);
    let c0 = cpu(libc::RUSAGE_SELF);
    let out = login_flow::run(
        cfg,
        base,
        &login_flow::Users {
            target,
            tag: &format!("benchflow{rep}-"),
            accounts: &[],
        },
        CancellationToken::new(),
        Arc::new(AtomicU64::new(0)),
    )
    .await;
    let client_cpu = cpu(libc::RUSAGE_SELF) - c0;
    let app_cpu = tree_cpu(app_pid) - a0;
    assert_eq!(out.counts.errors, 0, "{:?}", out.errors);
    let me = out.ops.iter().find(|o| o.op == "me").unwrap();
    let all = out.ops.iter().find(|o| o.op == "all").unwrap();
    HttpSide {
        rps: all.throughput,
        requests: out.counts.ok as f64,
        client_cpu,
        app_cpu,
        me_share: me.ok as f64 / all.ok as f64,
    }
}

async fn turnaround(bin: &ProvisionedServer) {
    println!("\n## Turnaround: server spawn to first answered operation ({SERVER}, 20 starts)\n");
    let spec = bench_spec();
    let cfg = CacheOpsConfig::resolve(&params(
        "kind = \"cache-ops\"\nconnections = 1\nops = 1\nwarmup = \"0s\"",
    ))
    .unwrap();
    let mut start_ms = Vec::new();
    let mut first_op_ms = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let server = ServerProcess::start(&spec, bin).await.unwrap();
        start_ms.push(server.last_start_ms);
        cache_ops::run(
            &cfg,
            cachegate::scenario::cluster::Target::Single(server.endpoint()),
            "t:",
            CancellationToken::new(),
            Arc::new(AtomicU64::new(0)),
        )
        .await;
        first_op_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("spawn → PONG median {:.1} ms; spawn → first cache-ops op answered median {:.1} ms (includes the scenario's fixed 20 ms start offset)", med(&mut start_ms), med(&mut first_op_ms));
}

async fn memory(bin: &ProvisionedServer) {
    let long = std::env::var("CACHEGATE_BENCH_LONG").is_ok();
    let (secs, rate) = if long { (600, 17_000) } else { (30, 17_000) };
    println!(
        "\n## Memory: RSS of a {secs}-second open-loop run at {rate} ops/s (~{} ops)\n",
        secs * rate
    );
    let spec = bench_spec();
    let server = ServerProcess::start(&spec, bin).await.unwrap();
    let cfg = CacheOpsConfig::resolve(&params(&format!(
        "kind = \"cache-ops\"\nconnections = 50\nrate = {rate}\nduration = \"{secs}s\"\nwarmup = \"1s\""
    )))
    .unwrap();
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampler = {
        let samples = samples.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            loop {
                samples
                    .lock()
                    .unwrap()
                    .push((t.elapsed().as_secs(), status_kib("VmRSS")));
                tokio::time::sleep(Duration::from_secs(if secs > 60 { 30 } else { 5 })).await;
            }
        })
    };
    let out = cache_ops::run(
        &cfg,
        cachegate::scenario::cluster::Target::Single(server.endpoint()),
        "m:",
        CancellationToken::new(),
        Arc::new(AtomicU64::new(0)),
    )
    .await;
    sampler.abort();
    let s = samples.lock().unwrap().clone();
    let line: Vec<String> = s
        .iter()
        .map(|(t, kib)| format!("{t}s {:.1}MiB", *kib as f64 / 1024.0))
        .collect();
    println!(
        "{} ops measured, {} errors; peak RSS (VmHWM) {:.1} MiB; RSS: {}",
        out.counts.ok,
        out.counts.errors,
        status_kib("VmHWM") as f64 / 1024.0,
        line.join(", ")
    );
}

fn main() {
    if Command::new("redis-benchmark")
        .arg("--version")
        .output()
        .is_err()
        || Command::new("wrk")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
    {
        eprintln!("needs redis-benchmark and wrk: apt-get install redis-tools wrk");
        std::process::exit(2);
    }
    // As `cachegate run` does, so thousands of connections fit (redis-benchmark inherits it).
    cachegate::fd_limit::raise_soft_to_hard().unwrap();
    // One load thread, as `cachegate run` uses on 2 cores (CPUs / 2).
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = cachegate::load_runtime((cpus / 2).max(1)).unwrap();
    let bin = Provisioner::with_default_cache()
        .provision(&SERVER.parse().unwrap())
        .expect("redis 7.0 (apt-get install redis-server)");
    let _ = Path::new(".");
    let only = std::env::var("CACHEGATE_BENCH_ONLY").unwrap_or_default();
    rt.block_on(async {
        if only.is_empty() || only == "raw" {
            raw_ops(&bin, false).await;
        }
        if only.is_empty() || only == "tls" {
            raw_ops(&bin, true).await;
        }
        if only.is_empty() || only == "http" {
            http(&bin).await;
        }
        if only.is_empty() || only == "turnaround" {
            turnaround(&bin).await;
        }
        if only.is_empty() || only == "memory" {
            memory(&bin).await;
        }
        if only.is_empty() || only == "sweep" {
            sweep().await;
        }
    });
}

/// The sweep's server: cached by the provisioner (7.0 comes from the system), with room for
/// 10,000 clients.
const SWEEP_SERVER: &str = "redis@7.4";

/// One side of one sweep point.
struct SweepSide {
    ops_per_s: f64,
    cpu_us_per_op: f64,
    peak_rss_mib: f64,
    p99_ms: f64,
    note: String,
}

/// Reset this process's peak RSS (VmHWM), so each run reports its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn sweep_cachegate(server: &ServerProcess, conns: u32, mix: &str) -> SweepSide {
    // op_timeout well above any latency at 10,000 connections on 2 cores: this measures
    // throughput, as redis-benchmark (which has no timeout) does.
    let cfg = CacheOpsConfig::resolve(&params(&format!(
        "kind = \"cache-ops\"\nconnections = {conns}\nduration = \"4s\"\nwarmup = \"1s\"\nop_timeout = \"30s\"\nkeyspace = 10000\nvalue_size = 100\n{mix}"
    )))
    .unwrap();
    reset_peak_rss();
    let c0 = cpu(libc::RUSAGE_SELF);
    let out = cache_ops::run(
        &cfg,
        cachegate::scenario::cluster::Target::Single(server.endpoint()),
        "sweep:",
        CancellationToken::new(),
        Arc::new(AtomicU64::new(0)),
    )
    .await;
    let cpu_s = cpu(libc::RUSAGE_SELF) - c0;
    let all = out.ops.iter().find(|o| o.op == "all").unwrap();
    let connect = out.ops.iter().find(|o| o.op == "connect");
    SweepSide {
        ops_per_s: all.throughput,
        cpu_us_per_op: cpu_s * 1e6 / out.counts.sent.max(1) as f64,
        peak_rss_mib: status_kib("VmHWM") as f64 / 1024.0,
        p99_ms: all.latency.p99_us / 1000.0,
        note: format!(
            "{} errors, setup {:.1} s",
            out.counts.errors,
            connect.map_or(0.0, |c| c.ok as f64 / c.throughput.max(1e-9))
        ),
    }
}

/// redis-benchmark GET with `conns` clients; its peak RSS and CPU from wait4.
// The child is reaped by wait4 (which also gives its rusage), not by Child::wait.
#[allow(clippy::zombie_processes)]
fn sweep_redis_benchmark(server: &ServerProcess, conns: u32) -> SweepSide {
    // Enough requests for several seconds at any connection count.
    let requests = (conns as u64 * 40).max(200_000);
    let mut child = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string()])
        .args(["-c", &conns.to_string(), "-n", &requests.to_string()])
        .args(["-t", "get", "-d", "100", "-r", "10000", "--csv"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-benchmark runs (apt-get install redis-tools)");
    // Its own peak RSS, from /proc while it runs: wait4's ru_maxrss would report this harness's
    // RSS at the fork, which the child inherits as its high-water mark before exec.
    let pid = child.id();
    let peak_kib = std::thread::spawn(move || {
        let mut peak = 0u64;
        while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            match hwm {
                Some(kib) => peak = peak.max(kib),
                None => break, // a zombie has no memory lines: it has exited
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
    let mut status = 0;
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::wait4(child.id() as i32, &mut status, 0, &mut ru);
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    let cols: Vec<f64> = text
        .lines()
        .find(|l| l.starts_with("\"GET\""))
        .unwrap_or_else(|| panic!("a GET row in: {text}"))
        .split(',')
        .skip(1)
        .map(|c| c.trim_matches('"').parse().unwrap_or(0.0))
        .collect();
    SweepSide {
        ops_per_s: cols[0],
        cpu_us_per_op: (t(ru.ru_utime) + t(ru.ru_stime)) * 1e6 / requests as f64,
        peak_rss_mib: peak_kib.join().unwrap_or(0) as f64 / 1024.0,
        p99_ms: cols[5],
        note: String::new(),
    }
}

async fn sweep() {
    let counts: Vec<u32> = std::env::var("CACHEGATE_BENCH_SWEEP")
        .unwrap_or_else(|_| "50,500,1000,2000,5000,10000".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let bin = Provisioner::with_default_cache()
        .provision(&SWEEP_SERVER.parse().unwrap())
        .expect("redis 7.4 provisions");
    let spec = ServerSpec {
        settings: ServerSettings {
            extra: vec!["maxclients 20000".into()],
            ..Default::default()
        },
        server: SWEEP_SERVER.parse().unwrap(),
        ..bench_spec()
    };
    println!("\n## Connection sweep: cachegate cache-ops vs redis-benchmark -t get ({SWEEP_SERVER}, maxclients 20000, 100-byte values, 10k keys, pipeline 1; cachegate 1 s warm-up + 4 s; redis-benchmark runs before and after cachegate, ratio against their median)\n");
    println!("| connections | cachegate mix | ops/s | redis-benchmark GET ops/s (before / after) | ratio | client CPU µs/op (cg / rb) | peak RSS MiB (cg / rb) | p99 ms (cg / rb) | notes |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---|");
    const DEFAULT_MIX: &str = "";
    const GET_ONLY: &str = "mix = { get = 1 }";
    for conns in counts {
        // A fresh server per connection count; sandwiched: rb, cachegate default, cachegate
        // GET, rb, so a drift of the shared machine shows as a gap between the two rb runs.
        let server = ServerProcess::start(&spec, &bin).await.unwrap();
        let rb1 = sweep_redis_benchmark(&server, conns);
        let mixed = sweep_cachegate(&server, conns, DEFAULT_MIX).await;
        let get = sweep_cachegate(&server, conns, GET_ONLY).await;
        let rb2 = sweep_redis_benchmark(&server, conns);
        let rb_ops = (rb1.ops_per_s + rb2.ops_per_s) / 2.0;
        for (what, cg) in [("default (80% GET)", &mixed), ("GET only", &get)] {
            println!(
                "| {conns} | {what} | {:.0} | {:.0} / {:.0} | **{:.2}** | {:.1} / {:.1} | {:.0} / {:.0} | {:.1} / {:.1} | {} |",
                cg.ops_per_s,
                rb1.ops_per_s,
                rb2.ops_per_s,
                cg.ops_per_s / rb_ops,
                cg.cpu_us_per_op,
                (rb1.cpu_us_per_op + rb2.cpu_us_per_op) / 2.0,
                cg.peak_rss_mib,
                rb1.peak_rss_mib.max(rb2.peak_rss_mib),
                cg.p99_ms,
                (rb1.p99_ms + rb2.p99_ms) / 2.0,
                cg.note
            );
        }
    }
}
