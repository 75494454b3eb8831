//! The fast tier: every output rendered from a checked-in run, the judge (gates, baseline
//! comparison, exit codes), `compare` and `report` on the command line, and matrix expansion
//! with filters. No server, virtualenv, Docker or browser: `cargo test --lib --test fast_outputs`.
//!
//! The fixture (tests/fixtures/README.md) is a real run of tests/fixtures/matrices/*.toml, and a
//! second run of the same as its baseline. Snapshots live in tests/snapshots/; after an intended
//! change to an output, review it with `cargo insta review` or rerun with `INSTA_UPDATE=always`.

use std::path::{Path, PathBuf};
use std::process::Command;

use cachegate::config::load_matrix;
use cachegate::judge::{self, CompareOptions, Verb};
use cachegate::report;
use cachegate::results::store::RunInfo;
use cachegate::results::{CellResult, RunDir};
use cachegate::runner::select_cells;
use insta::assert_snapshot;
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A copy of a fixture run folder (rendering writes into it).
fn copy_run(name: &str, into: &Path) -> RunDir {
    let dir = into.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["results.jsonl", "run.json"] {
        std::fs::copy(fixtures().join(name).join(f), dir.join(f)).unwrap();
    }
    RunDir::open(&dir).unwrap()
}

fn read(dir: &RunDir, name: &str) -> String {
    std::fs::read_to_string(dir.path.join(name)).unwrap()
}

/// summary.json without the one field that changes on every rendering.
fn stable_summary(text: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    v["generated_at"] = "[generated_at]".into();
    serde_json::to_string_pretty(&v).unwrap()
}

/// index.html with each SVG chart replaced by its digest: the page's text stays reviewable and a
/// change to any chart still changes the snapshot.
fn digest_svgs(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..].find("</svg>").expect("svg closes") + start + "</svg>".len();
        let digest = Sha256::digest(&rest.as_bytes()[start..end]);
        out.push_str(&rest[..start]);
        out.push_str(&format!(
            "<svg sha256=\"{}\" bytes=\"{}\"/>",
            &format!("{digest:x}")[..16],
            end - start
        ));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn every_renderer_matches_its_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run("run", tmp.path());
    let base = copy_run("baseline", tmp.path());
    let rendered = report::render_all(&run, Some(&base), CompareOptions::default()).unwrap();
    // A cell that passed its scenario but failed its gate says so on the cell everywhere.
    let gated = "redis@7.4/none/p16";
    let row = |id: &str| {
        let line = rendered
            .table
            .lines()
            .find(|l| l.starts_with(&format!("{id} ")));
        line.unwrap().to_string()
    };
    assert!(
        row(gated).contains(" PASS, GATE FAILED "),
        "{}",
        rendered.table
    );
    assert!(read(&run, "summary.md").contains(&format!("| `{gated}` | PASS, GATE FAILED |")));
    let junit = read(&run, "junit.xml");
    let case = &junit[junit.find(&format!("name=\"{gated}\"")).unwrap()..];
    assert!(
        case[..case.find("</testcase>").unwrap()].contains("type=\"GATE\""),
        "{junit}"
    );
    let html = read(&run, "index.html");
    let matrix = &html[html.find("<h2>Verdicts</h2>").unwrap()..];
    let matrix = &matrix[..matrix.find("</table>").unwrap()];
    assert!(matrix.contains("GATE FAILED"), "{matrix}");
    // Each kind heads its row with what it is about: the expected loss of sessions is not
    // "errors", and an eviction row does not show the fill's refused writes.
    let restart = row("redis@7.4/none/django-5.2/cache/restart");
    assert!(restart.contains(" 0  0/5 sessions kept"), "{restart}");
    let eviction = row("redis@7.4/none/django-5.2/cache/eviction");
    assert!(!eviction.contains("  77225  "), "{eviction}");
    assert_snapshot!("table", rendered.table);
    assert_snapshot!("summary_json", stable_summary(&read(&run, "summary.json")));
    assert_snapshot!("junit_xml", read(&run, "junit.xml"));
    assert_snapshot!("summary_md", read(&run, "summary.md"));
    assert_snapshot!("results_csv", read(&run, "results.csv"));
    assert_snapshot!("index_html", digest_svgs(&read(&run, "index.html")));
}

fn results(name: &str) -> Vec<CellResult> {
    cachegate::results::store::read_jsonl(&fixtures().join(name).join("results.jsonl")).unwrap()
}

/// How a fixture run ended (its run.json).
fn info(name: &str) -> Option<RunInfo> {
    RunDir::open(&fixtures().join(name)).unwrap().read_info()
}

/// What the judge decides over the fixture: the failed gate and the deltas, and the exit code.
fn judged(baseline: Option<&[CellResult]>, current: &[CellResult]) -> String {
    let j = judge::judge(
        current,
        info("run").as_ref(),
        baseline,
        CompareOptions::default(),
    );
    let mut out = format!("exit code {}\n", j.run_exit_code);
    for g in &j.gates {
        out += &format!(
            "gate {} {} {} = {:.1}: {}\n",
            g.cell_id,
            g.metric,
            g.condition,
            g.value,
            if g.passed { "passed" } else { "FAILED" }
        );
    }
    for d in j.comparison.iter().flatten() {
        out += &format!(
            "delta {} {} {:?} change {:?} noise {:.3} tolerance {:.3}\n",
            d.cell_id,
            d.metric,
            d.status,
            d.change.map(|c| format!("{c:+.3}")),
            d.noise,
            d.tolerance
        );
    }
    out
}

#[test]
fn the_judge_on_the_fixture_run() {
    let (base, cur) = (results("baseline"), results("run"));
    // One cell passes its scenario but misses its throughput gate: the run fails.
    assert_snapshot!("judge_with_baseline", judged(Some(&base), &cur));
    // A run judged against itself changes nothing.
    assert_snapshot!("judge_against_itself", judged(Some(&cur), &cur));
    // One judgement, one exit code per command: `run` counts everything (here the failed
    // gate), `report` re-renders, `compare` counts only regressions (none in this fixture).
    let run = info("run");
    let j = judge::judge(&cur, run.as_ref(), Some(&base), CompareOptions::default());
    assert_eq!(codes(&j), [1, 0, 0]);
    // A run that recorded no end (the harness was killed) is an infrastructure failure.
    let j = judge::judge(&cur, None, None, CompareOptions::default());
    assert_eq!(codes(&j), [3, 0, 0]);
}

/// The exit codes of `run`, `report` and `compare` for one judgement.
fn codes(j: &judge::Judgement) -> [i32; 3] {
    [Verb::Run, Verb::Report, Verb::Compare].map(|v| j.exit_code(v))
}

#[test]
fn the_judge_catches_a_tenfold_slowdown_without_gates() {
    let base = results("baseline");
    // The same run with every cache-ops cell at a tenth of the throughput and no gates.
    let slow: Vec<CellResult> = results("run")
        .into_iter()
        .map(|mut r| {
            r.gates.clear();
            if r.scenario_kind == "cache-ops" {
                for op in &mut r.ops {
                    op.throughput /= 10.0;
                }
            }
            r
        })
        .collect();
    let text = judged(Some(&base), &slow);
    assert!(
        text.contains("delta valkey@9.1/none throughput Regression"),
        "{text}"
    );
    let j = judge::judge(
        &slow,
        info("run").as_ref(),
        Some(&base),
        CompareOptions::default(),
    );
    assert_eq!(codes(&j), [1, 0, 1]);
    assert_snapshot!("judge_tenfold_slowdown", text);
}

fn cachegate(args: &[&Path]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cachegate"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn compare_and_report_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run("run", tmp.path());
    let base = copy_run("baseline", tmp.path());
    let (code, text) = cachegate(&[Path::new("compare"), &base.path, &run.path]);
    assert_snapshot!("compare_cli", format!("exit {code:?}\n{text}"));
    let (code, text) = cachegate(&[Path::new("report"), &run.path]);
    assert_snapshot!("report_cli", format!("exit {code:?}\n{text}"));
}

/// The cells of matrix files, one line each, after `filters`.
fn cells(files: &[PathBuf], filters: &[&str]) -> String {
    let loaded: Vec<_> = files.iter().map(|f| load_matrix(f).unwrap()).collect();
    let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
    select_cells(&loaded, &filters)
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} [{} #{}] {:?} expect {:?}\n",
                c.id,
                c.matrix,
                c.repeat + 1,
                c.scenario.kind(),
                c.expected
            )
        })
        .collect()
}

#[test]
fn matrix_expansion_and_filters() {
    let mut fixture: Vec<PathBuf> = std::fs::read_dir(fixtures().join("matrices"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    fixture.sort();
    assert_snapshot!("cells_fixture", cells(&fixture, &[]));
    assert_snapshot!(
        "cells_filtered",
        cells(
            &fixture,
            &["runtime=process", "server=redis@7", "variant=p16"]
        )
    );
    // The bug this tier found: a runtime term ended the filter, so every server matched.
    let redis7 = cells(&fixture, &["runtime=process", "server=redis@7"]);
    assert!(
        !redis7.contains("redis@6.2") && !redis7.contains("valkey"),
        "{redis7}"
    );
}

/// A copy of the fixture run with each result line passed through `edit` (None drops it).
fn edited_run(
    into: &Path,
    name: &str,
    edit: impl Fn(serde_json::Value) -> Option<serde_json::Value>,
) -> PathBuf {
    let dir = copy_run("run", into).path;
    let renamed = into.join(name);
    std::fs::rename(&dir, &renamed).unwrap();
    let text = std::fs::read_to_string(renamed.join("results.jsonl")).unwrap();
    let lines: Vec<String> = text
        .lines()
        .filter_map(|l| edit(serde_json::from_str(l).unwrap()))
        .map(|v| v.to_string() + "\n")
        .collect();
    std::fs::write(renamed.join("results.jsonl"), lines.concat()).unwrap();
    renamed
}

#[test]
fn compare_fails_on_missing_broken_or_disjoint_cells_and_skips_changed_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let base = copy_run("baseline", tmp.path()).path;
    let compare = |current: &Path| cachegate(&[Path::new("compare"), &base, current]);
    let is = |v: &serde_json::Value, id: &str| v["cell_id"] == id;

    // The fixture itself compares every cell and finds no regression.
    let same = edited_run(tmp.path(), "same", Some);
    let (code, text) = compare(&same);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("COMPARISON FAILED"), "{text}");

    // No cell in common: nothing was compared, which is not a pass.
    let disjoint = edited_run(tmp.path(), "disjoint", |mut v| {
        v["cell_id"] = format!("other/{}", v["cell_id"].as_str().unwrap()).into();
        Some(v)
    });
    let (code, text) = compare(&disjoint);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("COMPARISON FAILED: nothing was compared"),
        "{text}"
    );
    assert!(text.contains("MISSING        valkey@9.1/none"), "{text}");

    // A cell the current run lost.
    let lost = edited_run(tmp.path(), "lost", |v| {
        (!is(&v, "valkey@9.1/none")).then_some(v)
    });
    let (code, text) = compare(&lost);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("COMPARISON FAILED: valkey@9.1/none is missing from the current run"),
        "{text}"
    );

    // A cell that is ERROR in the current run (one of its three repeats broke).
    let broken = edited_run(tmp.path(), "broken", |mut v| {
        if is(&v, "valkey@9.1/none") && v["repeat"] == 1 {
            v["verdict"] = "ERROR".into();
            v["infra_error"] = "server valkey@9.1 failed: no PONG within 20s".into();
        }
        Some(v)
    });
    let (code, text) = compare(&broken);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(
            "COMPARISON FAILED: valkey@9.1/none is ERROR in the current run: 1 of 3 repeats: \
             server valkey@9.1 failed: no PONG within 20s"
        ),
        "{text}"
    );

    // The same cell id run with another op_timeout: reported, not judged, and not a failure
    // (the other cells were compared). Its ten-fold throughput drop is not called a regression.
    let changed = edited_run(tmp.path(), "changed", |mut v| {
        if is(&v, "redis@6.2/none") {
            v["scenario"]["op_timeout"] = "0s".into();
            for op in v["ops"].as_array_mut().unwrap() {
                op["throughput"] = (op["throughput"].as_f64().unwrap() / 10.0).into();
            }
        }
        Some(v)
    });
    let (code, text) = compare(&changed);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(
            "NOT COMPARABLE redis@6.2/none: parameters differ: op_timeout: \"1s\" vs \"0s\""
        ),
        "{text}"
    );
    assert!(!text.contains("redis@6.2/none  throughput"), "{text}");
    let md = std::fs::read_to_string(changed.join("summary.md")).unwrap();
    assert!(md.contains("1 not comparable"), "{md}");
}

/// Cell ids, signatures and checks holding Markdown syntax stay inside their table cell in
/// summary.md: every row keeps its 8 columns, nothing spills onto another line.
#[test]
fn markdown_metacharacters_in_values_do_not_break_summary_md() {
    let tmp = tempfile::tempdir().unwrap();
    let hostile = "redis@7.4/none/a|b *x* `y`\nz";
    let run = edited_run(tmp.path(), "hostile", |mut v| {
        if v["cell_id"] == "redis@7.4/none/oom" {
            v["cell_id"] = hostile.into();
            v["errors"][0]["kind"] = "server | error `OOM`\n**".into();
        }
        Some(v)
    });
    let (code, text) = cachegate(&[Path::new("report"), &run]);
    assert_eq!(code, Some(0), "{text}");
    let md = std::fs::read_to_string(run.join("summary.md")).unwrap();
    let separators = |row: &str| {
        let b = row.as_bytes();
        (0..b.len())
            .filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\'))
            .count()
    };
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(rows.len(), 2 + 12, "{md}");
    for row in rows {
        assert_eq!(separators(row), 9, "{row}");
    }
    assert!(
        md.contains("| ``redis@7.4/none/a\\|b *x* `y` z`` | XFAIL |"),
        "{md}"
    );
    // The signature keeps its line too.
    assert!(
        md.contains("- ``server \\| error `OOM` **: OOM command not allowed"),
        "{md}"
    );
}

/// Hostile strings in a cell id, a verdict reason and an error message (as a matrix or a
/// server could produce them) are escaped in every HTML context (text, attributes, the SVG
/// charts) and in JUnit: none of them opens an element or closes an attribute.
#[test]
fn hostile_strings_are_escaped_in_html_svg_and_junit() {
    let tmp = tempfile::tempdir().unwrap();
    let tag = "<img src=x onerror=alert(1)>";
    let quote = "\"' onmouseover='alert(2)";
    let run = edited_run(tmp.path(), "hostile-html", |mut v| {
        if v["cell_id"] == "redis@7.4/none/oom" {
            v["cell_id"] = format!("redis@7.4/{tag}{quote}").into();
            v["verdict_reason"] = format!("reason {tag} {quote}").into();
            v["errors"][0]["example"] = format!("</script><script>alert(3)</script>{quote}").into();
        }
        Some(v)
    });
    let (code, text) = cachegate(&[Path::new("report"), &run]);
    assert_eq!(code, Some(0), "{text}");
    let html = std::fs::read_to_string(run.join("index.html")).unwrap();
    for raw in [tag, quote, "<script>alert(3)", "onmouseover='"] {
        assert!(!html.contains(raw), "unescaped in index.html: {raw}");
    }
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("&quot;&#39; onmouseover=&#39;alert(2)"));
    // Every <svg> chart's labels are escaped too: no element from the strings inside one.
    for svg in html.split("<svg").skip(1) {
        let body = &svg[..svg.find("</svg>").unwrap_or(svg.len())];
        assert!(
            !body.contains("<img") && !body.contains("<script"),
            "{body}"
        );
    }
    let junit = std::fs::read_to_string(run.join("junit.xml")).unwrap();
    assert!(
        !junit.contains(tag) && !junit.contains("<script>"),
        "{junit}"
    );
    assert!(
        junit.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{junit}"
    );
}
