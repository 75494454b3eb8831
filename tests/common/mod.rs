//! Helpers shared by the integration tests: real servers from the real provisioner.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cachegate::results::store::read_jsonl;
use cachegate::results::CellResult;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use cachegate::config::ScenarioParams;
use cachegate::scenario::cache_ops::{self, CacheOpsConfig};
use cachegate::scenario::ScenarioOutput;
use cachegate::server::{
    Persistence, ProvisionedServer, Provisioner, ServerProcess, ServerSettings, ServerSpec,
};
use tokio_util::sync::CancellationToken;

pub fn provision(server: &str) -> ProvisionedServer {
    Provisioner::with_default_cache()
        .provision(&server.parse().unwrap())
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn spec(server: &str, persistence: &str) -> ServerSpec {
    ServerSpec {
        server: server.parse().unwrap(),
        persistence: persistence.parse::<Persistence>().unwrap(),
        settings: ServerSettings::default(),
        mode: Default::default(),
        secrets: None,
    }
}

/// A cache-ops config from TOML fields (kind is added).
pub fn cache_ops_config(fields: &str) -> CacheOpsConfig {
    let params: ScenarioParams =
        toml::from_str(&format!("kind = \"cache-ops\"\n{fields}")).unwrap();
    CacheOpsConfig::resolve(&params).unwrap()
}

pub async fn run_cache_ops(
    cfg: &CacheOpsConfig,
    server: &ServerProcess,
    prefix: &str,
) -> ScenarioOutput {
    cache_ops::run(
        cfg,
        cachegate::scenario::cluster::Target::Single(server.endpoint()),
        prefix,
        CancellationToken::new(),
        Arc::new(AtomicU64::new(0)),
    )
    .await
}

/// Server processes started by cachegate whose private dir is gone: they outlived their owner.
pub fn leaked_servers() -> Vec<String> {
    let mut leaked = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        for arg in &args {
            if arg.contains("cachegate-server-")
                && arg.ends_with("server.conf")
                && !Path::new(arg).exists()
            {
                leaked.push(format!(
                    "pid {}: {}",
                    entry.file_name().to_string_lossy(),
                    args.join(" ")
                ));
            }
        }
    }
    leaked
}

pub fn pid_alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; look at its state.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
        .unwrap_or(false)
}

/// The real `cachegate` binary, stdin closed.
pub fn cachegate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cachegate"));
    c.stdin(Stdio::null());
    c
}

/// Everything a finished command printed, stdout then stderr.
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Run `cachegate ARGS` in `dir`: exit code and everything it printed.
pub fn run_cli<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> (Option<i32>, String) {
    let out = cachegate().args(args).current_dir(dir).output().unwrap();
    (out.status.code(), output_text(&out))
}

/// The one run directory `cachegate run --out OUT` made.
pub fn only_run_dir(out: &Path) -> PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .next()
        .expect("a run directory")
        .unwrap()
        .path()
}

/// Write `body` as a matrix in `dir`, run it with the real binary into `dir/out`, and return the
/// exit code, everything it printed, and the results of the run.
pub fn run_matrix(dir: &Path, body: &str) -> (Option<i32>, String, Vec<CellResult>) {
    std::fs::write(dir.join("m.toml"), body).unwrap();
    let (code, text) = run_cli(dir, &["run", "--no-progress", "--out", "out", "m.toml"]);
    let run_dir = only_run_dir(&dir.join("out"));
    (
        code,
        text,
        read_jsonl(&run_dir.join("results.jsonl")).unwrap(),
    )
}

/// The result of cell `id` (first repeat), or a panic listing the cells there are.
pub fn find_cell<'a>(results: &'a [CellResult], id: &str) -> &'a CellResult {
    results.iter().find(|r| r.cell_id == id).unwrap_or_else(|| {
        panic!(
            "no cell {id} in {:?}",
            results.iter().map(|r| &r.cell_id).collect::<Vec<_>>()
        )
    })
}

/// Headless Chromium, with every network request refused.
pub fn chromium() -> (&'static str, [&'static str; 6]) {
    let bin = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("headless Chromium is needed for this test: apt-get install chromium");
    (
        bin,
        [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ],
    )
}

/// The report at `html` laid out 1280 px wide: what the page measured (a copy of it with a
/// measuring script added; the report itself has none: the verdict matrix's width, the number of
/// charts and every chart label that overlaps another or leaves its chart) and a screenshot
/// (RGBA pixels, width).
pub fn report_in_browser(html: &Path) -> (serde_json::Value, Vec<u8>, u32) {
    let (bin, offline) = chromium();
    let page = std::fs::read_to_string(html).unwrap();
    let measure = r#"<script>
const t = document.querySelector('table.verdicts');
// Chart labels that collide with each other or stick out of their chart, as laid out.
const collisions = [];
for (const svg of document.querySelectorAll('svg')) {
  const s = svg.getBoundingClientRect();
  const boxes = [...svg.querySelectorAll('text')]
    .map(e => [e.textContent, e.getBoundingClientRect()])
    .filter(([, b]) => b.width > 0);
  boxes.forEach(([ta, a], i) => {
    if (a.left < s.left - 1 || a.right > s.right + 1) collisions.push('outside its chart: ' + ta);
    for (const [tb, b] of boxes.slice(i + 1)) {
      if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1)
        collisions.push(ta + ' over ' + tb);
    }
  });
}
document.body.setAttribute('data-measured', JSON.stringify({
  window: window.innerWidth,
  page: document.documentElement.scrollWidth,
  matrix: t ? t.scrollWidth : 0,
  matrix_box: t ? t.getBoundingClientRect().right : 0,
  charts: document.querySelectorAll('svg').length,
  collisions,
}));
</script></body>"#;
    let probe = html.with_file_name("measure.html");
    std::fs::write(&probe, page.replace("</body>", measure)).unwrap();
    let dom = Command::new(bin)
        .args(offline)
        .args(["--window-size=1280,2000", "--dump-dom"])
        .arg(format!("file://{}", probe.display()))
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    std::fs::remove_file(&probe).unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    let start = dom.find("data-measured=\"").expect("the page was measured") + 15;
    let json = &dom[start..start + dom[start..].find('"').unwrap()];
    let measured: serde_json::Value = serde_json::from_str(
        &json
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
    .unwrap();
    let shot = html.with_file_name("screenshot.png");
    let status = Command::new(bin)
        .args(offline)
        .args(["--window-size=1280,6000"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => panic!("screenshot in {other:?}"),
    };
    (measured, rgba, info.width)
}

/// Pixels of exactly this colour in an RGBA buffer.
pub fn pixels_of(rgba: &[u8], rgb: (u8, u8, u8)) -> usize {
    rgba.chunks(4).filter(|p| (p[0], p[1], p[2]) == rgb).count()
}
