//! Reports of real runs: the HTML page opened in headless Chromium with no network, summary.json
//! against its documented schema, JUnit, Markdown, and re-rendering from results.jsonl alone.

mod common;

use common::{only_run_dir, run_cli};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// A multi-cell run with passing, expected-failure and unrunnable cells.
fn multi_cell_run(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("m.toml"),
        r#"[matrix]
name = "report"
[axes]
server = ["redis@6.2", "valkey@9.1", "redis@7.2"]
[server_paths]
"redis@7.2" = "/nonexistent/redis-server"
[server]
maxmemory = "8mb"
maxmemory_policy = "noeviction"
[scenario]
kind = "cache-ops"
connections = 4
duration = "2s"
warmup = "200ms"
value_size = 64
keyspace = 2000
[[axes.variant]]
label = "read-heavy"
mix = { get = 9, set = 1 }
[[axes.variant]]
label = "fill"
mix = { set = 1 }
value_size = 8192
keyspace = 100000
[[expect]]
when = { variant = "fill" }
verdict = "fail"
reason = "8mb with noeviction refuses the fill"
[gates]
"get.p99" = "< 1s"
errors = "== 0"
"#,
    )
    .unwrap();
    let (code, text) = run_cli(dir, &["run", "--out", "out", "m.toml"]);
    assert_eq!(code, Some(3), "one server cannot be provisioned: {text}");
    only_run_dir(&dir.join("out"))
}

/// Check `value` against the JSON Schema subset `reports/summary.schema.json` uses: types,
/// required keys, no undocumented keys, enums and consts.
fn check_schema(value: &Value, schema: &Value, at: &str) {
    if let Some(c) = schema.get("const") {
        assert_eq!(value, c, "{at}");
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        assert!(e.contains(value), "{at}: {value} not in {e:?}");
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "string" => value.is_string(),
            "number" => value.is_number(),
            "integer" => value.is_u64() || value.is_i64(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            "null" => value.is_null(),
            _ => false,
        });
        assert!(ok, "{at}: {value} is not {types:?}");
    }
    if let (Some(obj), Some(props)) = (
        value.as_object(),
        schema.get("properties").and_then(Value::as_object),
    ) {
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            assert!(
                obj.contains_key(req.as_str().unwrap()),
                "{at}: missing documented field {req}"
            );
        }
        for (k, v) in obj {
            let sub = props
                .get(k)
                .unwrap_or_else(|| panic!("{at}.{k} is not documented in summary.schema.json"));
            check_schema(v, sub, &format!("{at}.{k}"));
        }
    }
    if let (Some(obj), Some(extra)) = (value.as_object(), schema.get("additionalProperties")) {
        for (k, v) in obj {
            check_schema(v, extra, &format!("{at}.{k}"));
        }
    }
    if let (Some(items), Some(item_schema)) = (value.as_array(), schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            check_schema(v, item_schema, &format!("{at}[{i}]"));
        }
    }
}

/// The page laid out at 1280 px: no sideways scrolling, the verdict matrix inside the window,
/// and no chart label over another or outside its chart.
fn assert_fits_and_reads(measured: &Value) {
    assert!(
        measured["page"].as_f64() <= measured["window"].as_f64()
            && measured["matrix_box"].as_f64().unwrap() <= 1280.0,
        "{measured}"
    );
    assert!(measured["charts"].as_u64().unwrap() >= 3, "{measured}");
    assert_eq!(
        measured["collisions"].as_array().unwrap().len(),
        0,
        "chart labels collide: {measured}"
    );
}

#[test]
fn report_of_a_real_run_renders_offline_and_machine_outputs_hold() {
    let dir = tempfile::tempdir().unwrap();
    let run = multi_cell_run(dir.path());

    // summary.json follows its documented, versioned schema, both ways.
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/summary.schema.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    check_schema(&summary, &schema, "summary");
    assert_eq!(summary["cells"].as_array().unwrap().len(), 6);
    assert_eq!(summary["verdicts"]["PASS"], 2);
    assert_eq!(summary["verdicts"]["XFAIL"], 2);
    assert_eq!(summary["verdicts"]["ERROR"], 2);
    assert_eq!(summary["exit_code"], 3);
    let sig = summary["signatures"].as_array().unwrap();
    let oom = sig
        .iter()
        .find(|g| {
            g["signature"]
                .as_str()
                .unwrap()
                .starts_with("server error OOM")
        })
        .expect("OOM grouped");
    assert_eq!(oom["cells"].as_array().unwrap().len(), 2, "{oom}");
    let gates = summary["gates"].as_array().unwrap();
    assert!(
        gates
            .iter()
            .any(|g| g["metric"] == "errors" && g["passed"] == false),
        "fill cells fail errors == 0"
    );
    assert!(gates
        .iter()
        .any(|g| g["metric"] == "get.p99" && g["passed"] == true));

    // JUnit: one case per cell; failures and errors carry the cause.
    let junit = std::fs::read_to_string(run.join("junit.xml")).unwrap();
    assert_eq!(
        junit.matches("<testcase ").count(),
        6 + gates.iter().filter(|g| g["passed"] == false).count()
    );
    assert!(junit.contains("<error") && junit.contains("/nonexistent/redis-server"));
    let md = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(
        md.contains("| `redis@6.2/none/read-heavy` | PASS |"),
        "{md}"
    );

    // The HTML page, opened in headless Chromium with every network request refused.
    let html = std::fs::read_to_string(run.join("index.html")).unwrap();
    // Self-contained: nothing to fetch (the SVG namespace URI is a name, not a request).
    for fetch in [
        "<script",
        "<link",
        "src=\"http",
        "href=\"http",
        "@import",
        "url(http",
    ] {
        assert!(
            !html.contains(fetch),
            "the page would fetch something: {fetch}"
        );
    }
    let (chromium, offline) = common::chromium();
    let offline: Vec<&str> = offline
        .into_iter()
        .chain(["--window-size=1280,3000"])
        .collect();
    let url = format!("file://{}", run.join("index.html").display());
    let dom = Command::new(chromium)
        .args(&offline)
        .arg("--dump-dom")
        .arg(&url)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.matches("<svg").count() >= 5,
        "bars, percentiles and timelines render as SVG"
    );
    assert!(
        dom.contains("<rect") && dom.contains("<polyline"),
        "charts have bars and lines"
    );
    assert!(
        dom.contains(">Verdicts<")
            && dom.contains(">Failure signatures<")
            && dom.contains(">Gates<")
    );
    assert!(dom.contains("class=\"v XFAIL\"") && dom.contains("class=\"v ERROR\""));
    let shot = run.join("screenshot.png");
    let status = Command::new(chromium)
        .args(&offline)
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 50_000,
        "a page with charts, not a blank one ({} bytes)",
        png.len()
    );

    // Laid out 1280 px wide, the verdict matrix fits the page; "what changes" lists every
    // pair of cells, everything else equal, whose verdicts differ (from summary.json), and
    // only those; the OOM signature is explained where it is shown.
    let (measured, _, _) = common::report_in_browser(&run.join("index.html"));
    assert_fits_and_reads(&measured);
    let cells = summary["cells"].as_array().unwrap();
    let verdict_of = |server: &str, variant: &str| {
        cells
            .iter()
            .find(|c| c["axes"]["server"] == server && c["axes"]["variant"] == variant)
            .map(|c| c["verdict"].as_str().unwrap().to_string())
            .unwrap()
    };
    let changes = &html[html
        .find("id=\"what-changes\"")
        .expect("a what-changes section")..];
    let changes = &changes[..changes.find("<h2>Verdicts</h2>").unwrap()];
    for server in ["redis@6.2", "valkey@9.1", "redis@7.2"] {
        let row = format!("data-from=\"{server}/none/read-heavy\" data-to=\"{server}/none/fill\"");
        let differs = verdict_of(server, "read-heavy") != verdict_of(server, "fill");
        assert_eq!(changes.contains(&row), differs, "{server}: {changes}");
    }
    let explanation = oom["explanation"]["means"]
        .as_str()
        .expect("OOM is explained");
    assert!(html.contains(&explanation.replace('\'', "&#39;")) || html.contains(explanation));
    assert!(md.contains(explanation), "summary.md explains it too");

    // Everything is rendered from results.jsonl alone.
    for f in [
        "index.html",
        "summary.json",
        "junit.xml",
        "summary.md",
        "results.csv",
    ] {
        std::fs::remove_file(run.join(f)).unwrap();
    }
    let (code, text) = run_cli(dir.path(), &["report", run.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    for f in [
        "index.html",
        "summary.json",
        "junit.xml",
        "summary.md",
        "results.csv",
    ] {
        assert!(run.join(f).exists(), "{f} re-rendered");
    }
}

/// `text` with `from` replaced, which must be there exactly once.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} in {text}");
    text.replacen(from, to, 1)
}

/// The shipped pre-upgrade matrix over three servers (3 servers × 3 stacks × 3 settings = 27
/// cells of the real login flow), reviewed as a person would: at 1280 px the verdict matrix fits
/// and no chart label collides; "what changes" comes first and lists, along every axis, exactly
/// the neighbouring cells whose verdict or signature differs (plus ones whose numbers moved beyond
/// the noise band); the misconfiguration's signature is explained, in the page and in summary.md.
#[test]
fn upgrade_run_of_27_cells_reads_at_1280_px() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("matrices/upgrade.toml"),
    )
    .unwrap();
    let servers = ["redis@6.2", "redis@7.4", "valkey@9.1"];
    let matrix = replace_once(
        &shipped,
        r#"server = ["redis@6.2", "redis@7.4"]"#,
        &format!("server = {servers:?}"),
    );
    // Fewer users than the shipped run: the report is under test, not the servers.
    let matrix = replace_once(
        &matrix,
        "use = \"scenarios/login-flow.toml\"\nusers = 8\niterations = 3",
        "use = \"login-flow\"\nusers = 4\niterations = 2",
    );
    std::fs::write(dir.path().join("upgrade.toml"), &matrix).unwrap();
    let (code, text) = run_cli(
        dir.path(),
        &["run", "--no-progress", "--out", "out", "upgrade.toml"],
    );
    let run = only_run_dir(&dir.path().join("out"));
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let cells = summary["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 27, "{text}");
    assert!(
        cells.iter().all(|c| c["verdict"] != "ERROR"),
        "every cell ran (exit {code:?}): {text}"
    );

    let html = std::fs::read_to_string(run.join("index.html")).unwrap();
    let (measured, _, _) = common::report_in_browser(&run.join("index.html"));
    assert_fits_and_reads(&measured);

    // "What changes" is the first section, and lists the cells it should.
    let start = html
        .find("<h2 id=\"what-changes\"")
        .expect("a what-changes section");
    let end = html.find("<h2>Verdicts</h2>").unwrap();
    assert!(start < end, "what changes comes before the verdict matrix");
    assert!(!html[..start].contains("<h2"), "and before anything else");
    let changes = &html[start..end];
    let axes: [(&str, Vec<&str>); 3] = [
        ("server", servers.to_vec()),
        ("stack", vec!["django-4.2", "django-5.2", "django-6.0"]),
        (
            "settings",
            vec![
                "cache-sessions",
                "cached-db-djredis",
                "djredis-options-on-builtin",
            ],
        ),
    ];
    let mut differing = 0;
    for (axis, values) in &axes {
        for pair in values.windows(2) {
            for a in cells.iter().filter(|c| c["axes"][axis] == pair[0]) {
                let b = cells
                    .iter()
                    .find(|b| {
                        b["axes"][axis] == pair[1]
                            && axes
                                .iter()
                                .filter(|(other, _)| other != axis)
                                .all(|(other, _)| b["axes"][other] == a["axes"][other])
                    })
                    .expect("every cell has a counterpart");
                let signatures_differ = a["signature"].is_string()
                    && b["signature"].is_string()
                    && a["signature"] != b["signature"];
                let differs = a["verdict"] != b["verdict"] || signatures_differ;
                let row = format!(
                    "data-from=\"{}\" data-to=\"{}\"",
                    a["cell_id"].as_str().unwrap(),
                    b["cell_id"].as_str().unwrap()
                );
                match changes.find(&row) {
                    None => assert!(!differs, "{row} differs but is not listed: {changes}"),
                    Some(at) => {
                        let listed = &changes[at..at + changes[at..].find("</tr>").unwrap()];
                        assert!(
                            differs || listed.contains("throughput") || listed.contains("p99"),
                            "{row} is listed with nothing changed: {listed}"
                        );
                        differing += usize::from(differs);
                    }
                }
            }
        }
    }
    // Settings that fail beside settings that pass: the matrix has verdict changes to show.
    assert!(differing > 0, "{changes}");
    let md = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(md.contains("### What changes"), "{md}");
    assert_eq!(
        md.matches("\n  - with ").count(),
        changes.matches("<tr class=\"change\"").count(),
        "summary.md lists the same changes: {md}"
    );

    // The misconfiguration's signature, explained where it is shown.
    let groups = summary["signatures"].as_array().unwrap();
    let client_class = groups
        .iter()
        .find(|g| {
            g["signature"]
                .as_str()
                .unwrap()
                .contains("unexpected keyword argument 'CLIENT_CLASS'")
        })
        .unwrap_or_else(|| panic!("the misconfiguration's signature: {groups:?}"));
    let means = client_class["explanation"]["means"]
        .as_str()
        .expect("the CLIENT_CLASS signature is explained");
    assert!(html.contains(&means.replace('\'', "&#39;")) || html.contains(means));
    assert!(md.contains(means), "{md}");
}
