//! The same server as a process and in a container, over both container network paths:
//! throughput of cachegate's `cache-ops` (and of `redis-benchmark` when installed, as a
//! reference that does not depend on cachegate) and the ratio of each container path to the
//! process. Rounds alternate process, container host, container bridge, so drift of this
//! machine's speed spreads over all three; medians are printed with their range.
//!
//! Run: `cargo bench --bench containers` (needs a Docker engine; `apt-get install redis-tools`
//! adds the redis-benchmark column). CACHEGATE_BENCH_ROUNDS (default 3), CACHEGATE_BENCH_SERVER
//! (default redis@7.4). Prints a table; asserts nothing about timings.

use std::process::Command;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use cachegate::config::ScenarioParams;
use cachegate::scenario::cache_ops::{self, CacheOpsConfig};
use cachegate::server::container::{
    ContainerLabels, ContainerOptions, ContainerServer, NetworkPath,
};
use cachegate::server::{
    Persistence, ProvisionedServer, Provisioner, RunningServer, ServerProcess, ServerSettings,
    ServerSpec,
};
use tokio_util::sync::CancellationToken;

const CONNECTIONS: u32 = 50;
const OPS: u64 = 300_000;

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Process,
    Host,
    Bridge,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Process => "process",
            Path::Host => "container, host network",
            Path::Bridge => "container, bridge (docker-proxy)",
        }
    }
}

async fn start(path: Path, spec: &ServerSpec, bin: &ProvisionedServer) -> Box<dyn RunningServer> {
    let network = match path {
        Path::Process => return Box::new(ServerProcess::start(spec, bin).await.unwrap()),
        Path::Host => NetworkPath::Host,
        Path::Bridge => NetworkPath::Bridge,
    };
    let options = ContainerOptions {
        network,
        ..Default::default()
    };
    let labels = ContainerLabels::new("bench", "containers");
    Box::new(
        ContainerServer::start(spec, bin, &options, labels)
            .await
            .unwrap(),
    )
}

async fn cachegate_ops(server: &dyn RunningServer, op: &str) -> f64 {
    let params: ScenarioParams = toml::from_str(&format!(
        "kind = \"cache-ops\"\nconnections = {CONNECTIONS}\nops = {OPS}\nwarmup = \"0s\"\nkeyspace = 10000\nvalue_size = 100\nmix = {{ {op} = 1 }}"
    ))
    .unwrap();
    let cfg = CacheOpsConfig::resolve(&params).unwrap();
    let out = cache_ops::run(
        &cfg,
        cachegate::scenario::cluster::Target::Single(server.endpoint()),
        "bench:",
        CancellationToken::new(),
        Arc::new(AtomicU64::new(0)),
    )
    .await;
    assert_eq!(out.counts.errors, 0, "{:?}", out.errors);
    out.ops.iter().find(|o| o.op == "all").unwrap().throughput
}

fn redis_benchmark(server: &dyn RunningServer, op: &str) -> Option<f64> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string()])
        .args(["-c", &CONNECTIONS.to_string(), "-n", &OPS.to_string()])
        .args(["-t", op, "-d", "100", "-r", "10000", "-q", "--csv"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("\"{}\"", op.to_uppercase())))?;
    line.split(',').nth(1)?.trim_matches('"').parse().ok()
}

fn median_and_range(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let rounds: usize = std::env::var("CACHEGATE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let server = std::env::var("CACHEGATE_BENCH_SERVER").unwrap_or_else(|_| "redis@7.4".into());
    let bin = Provisioner::with_default_cache()
        .provision(&server.parse().unwrap())
        .unwrap();
    let spec = ServerSpec {
        server: server.parse().unwrap(),
        persistence: Persistence::none(),
        settings: ServerSettings::default(),
        mode: Default::default(),
        secrets: None,
    };
    let has_reference = Command::new("redis-benchmark")
        .arg("--version")
        .output()
        .is_ok();
    let rt = cachegate::load_runtime(1).unwrap();
    let paths = [Path::Process, Path::Host, Path::Bridge];
    // results[path][op] = (cachegate samples, redis-benchmark samples)
    let mut samples = vec![vec![(vec![], vec![]); 2]; paths.len()];
    rt.block_on(async {
        for round in 0..rounds {
            for (pi, path) in paths.iter().enumerate() {
                eprintln!("round {}: {}", round + 1, path.name());
                let s = start(*path, &spec, &bin).await;
                for (oi, op) in ["get", "set"].iter().enumerate() {
                    samples[pi][oi].0.push(cachegate_ops(s.as_ref(), op).await);
                    if has_reference {
                        if let Some(v) = redis_benchmark(s.as_ref(), op) {
                            samples[pi][oi].1.push(v);
                        }
                    }
                }
                s.remove().await.unwrap();
            }
            eprintln!("round {}/{rounds} done", round + 1);
        }
    });
    println!(
        "\n{server}, {CONNECTIONS} connections, pipeline 1, {OPS} ops per sample, {rounds} rounds (median, range)"
    );
    println!(
        "{:<34} {:>4}  {:>28}  {:>9}  {:>28}  {:>9}",
        "path", "op", "cachegate ops/s", "vs proc", "redis-benchmark ops/s", "vs proc"
    );
    for (pi, path) in paths.iter().enumerate() {
        for (oi, op) in ["GET", "SET"].iter().enumerate() {
            let (cg, rb) = &samples[pi][oi];
            let (m, lo, hi) = median_and_range(cg.clone());
            let base = median_and_range(samples[0][oi].0.clone()).0;
            let reference = if rb.is_empty() {
                ("-".to_string(), "-".to_string())
            } else {
                let (rm, rlo, rhi) = median_and_range(rb.clone());
                let rbase = median_and_range(samples[0][oi].1.clone()).0;
                (
                    format!("{rm:.0} ({rlo:.0}-{rhi:.0})"),
                    format!("{:.2}", rm / rbase),
                )
            };
            println!(
                "{:<34} {:>4}  {:>28}  {:>9}  {:>28}  {:>9}",
                path.name(),
                op,
                format!("{m:.0} ({lo:.0}-{hi:.0})"),
                format!("{:.2}", m / base),
                reference.0,
                reference.1
            );
        }
    }
}
