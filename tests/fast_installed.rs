//! The fast tier for cachegate as an installed tool (issue 21): bundled matrices by name from a
//! folder outside the source tree, files on disk winning, `list`. The real binary, no server:
//! `cargo test --test fast_installed`.

mod common;

use std::path::{Path, PathBuf};

use common::run_cli;

const ONE_CELL: &str = r#"# A team's own quick matrix.
[matrix]
name = "ours"
[axes]
server = ["redis@6.2"]
[scenario]
use = "scenarios/cache-ops.toml"
ops = 100
"#;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

fn bundled_matrices() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("matrices"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".toml").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// Every bundled matrix checks by name in an empty folder, with exactly the cells its file in
/// the source tree has (the bundled matrix uses the bundled scenarios, which are those files).
#[test]
fn every_bundled_matrix_runs_by_name_outside_the_source_tree() {
    let empty = tempfile::tempdir().unwrap();
    let names = bundled_matrices();
    assert!(names.contains(&"quick".to_string()) && names.contains(&"upgrade".to_string()));
    for name in &names {
        let (code, bundled) = run_cli(empty.path(), &["check", name]);
        assert_eq!(code, Some(0), "{name}: {bundled}");
        let file = repo().join("matrices").join(format!("{name}.toml"));
        let (code, from_file) = run_cli(repo(), &["check", &file.display().to_string()]);
        assert_eq!(code, Some(0), "{name}: {from_file}");
        assert_eq!(bundled, from_file, "{name}");
        assert!(bundled.contains(" cells OK"), "{bundled}");
    }
    // `run` with no matrix is the bundled quick; the filter stops it before anything starts and
    // lists quick's servers.
    let (code, text) = run_cli(empty.path(), &["run", "--filter", "nothing-matches"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("matched none of the 6 cells") && text.contains("valkey@9.1"),
        "{text}"
    );
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

/// A file `matrices/NAME.toml` in the current folder wins over the bundled matrix of that name
/// (`list` says so); a path is always a file; a bundled matrix's scenario is the bundled one even
/// where a `scenarios/` folder on disk has a file of that name.
#[test]
fn files_on_disk_win_and_names_and_paths_do_not_mix() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "scenarios/cache-ops.toml", "kind = [broken\n");
    // The bundled quick does not read the broken file.
    let (code, text) = run_cli(dir.path(), &["check", "quick"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("6 cells OK"), "{text}");
    let (_, listing) = run_cli(dir.path(), &["list"]);
    assert!(!listing.contains("shadowed"), "{listing}");
    assert!(
        listing.contains("scenarios/cache-ops.toml is here too"),
        "{listing}"
    );

    write(dir.path(), "matrices/quick.toml", ONE_CELL);
    // Now `quick` is the team's file, whose `use` path reaches the (broken) file on disk.
    let (code, text) = run_cli(dir.path(), &["check", "quick"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("scenarios/cache-ops.toml:1:"), "{text}");
    write(
        dir.path(),
        "scenarios/cache-ops.toml",
        "kind = \"cache-ops\"\n",
    );
    let (code, text) = run_cli(dir.path(), &["check", "quick"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("redis@6.2/none  [ours #1]") && text.contains("1 cells OK"));
    let (code, default) = run_cli(dir.path(), &["run", "--filter", "nothing-matches"]);
    assert_eq!(code, Some(2));
    assert!(default.contains("matched none of the 1 cells"), "{default}");
    let (_, listing) = run_cli(dir.path(), &["list"]);
    let quick = listing
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("quick "))
        .nth(1)
        .unwrap_or_default();
    assert!(
        quick.contains("shadowed by matrices/quick.toml"),
        "{listing}"
    );

    // A path is a file, never a bundled name; a source-tree path says how to get the bundled one.
    let (code, text) = run_cli(dir.path(), &["check", "./upgrade"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("cannot read ./upgrade"), "{text}");
    let (code, text) = run_cli(dir.path(), &["check", "matrices/upgrade.toml"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("`upgrade` (a bare name) runs the bundled matrix"),
        "{text}"
    );
}

/// An unknown name is bad input that lists the bundled matrices; nothing is written.
#[test]
fn an_unknown_matrix_name_lists_the_bundled_ones() {
    let dir = tempfile::tempdir().unwrap();
    for verb in ["check", "run"] {
        let (code, text) = run_cli(dir.path(), &[verb, "upgrde"]);
        assert_eq!(code, Some(2), "{text}");
        assert!(
            text.contains("no matrix `upgrde`: no file matrices/upgrde.toml here"),
            "{text}"
        );
        assert!(text.contains(&bundled_matrices().join(", ")), "{text}");
        assert!(!text.contains("panicked"), "{text}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// `list` names every bundled matrix and scenario with the first sentence of its leading comment.
#[test]
fn list_describes_every_bundled_file() {
    let empty = tempfile::tempdir().unwrap();
    let (code, text) = run_cli(empty.path(), &["list"]);
    assert_eq!(code, Some(0), "{text}");
    for name in bundled_matrices() {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("  {name} "))),
            "{name}: {text}"
        );
    }
    assert!(
        text.contains("The default matrix (`cachegate run`): every server version"),
        "{text}"
    );
    assert!(
        text.contains("registration and login over HTTP against a web app"),
        "{text}"
    );
}

// ---- JSON Schema of matrix and scenario files ----

fn schema_text(of: &str) -> String {
    let out = common::cachegate().args(["schema", of]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", common::output_text(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn schema(of: &str) -> serde_json::Value {
    serde_json::from_str(&schema_text(of)).unwrap()
}

/// A TOML file as the JSON an editor's language server validates.
fn toml_as_json(text: &str) -> serde_json::Value {
    let value: toml::Value = toml::from_str(text).unwrap();
    serde_json::to_value(value).unwrap()
}

fn schema_errors(validator: &jsonschema::Validator, instance: &serde_json::Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// `schemas/*.schema.json` are what `cachegate schema` prints (the types they come from changed
/// otherwise); `CACHEGATE_UPDATE_SCHEMAS=1` rewrites them.
#[test]
fn the_checked_in_schemas_are_current() {
    for of in ["matrix", "scenario"] {
        let path = repo().join(format!("schemas/{of}.schema.json"));
        let generated = schema_text(of);
        if std::env::var_os("CACHEGATE_UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} is stale: regenerate it with `CACHEGATE_UPDATE_SCHEMAS=1 cargo test --test \
             fast_installed` (or `cachegate schema {of} > {}`) and review the diff",
            path.display(),
            path.display()
        );
        // Both are valid draft-07 schemas.
        let value: serde_json::Value = serde_json::from_str(&generated).unwrap();
        jsonschema::meta::validate(&value).unwrap();
        assert_eq!(value["$schema"], "http://json-schema.org/draft-07/schema#");
    }
}

/// Every bundled matrix and scenario, converted to JSON, is valid by its schema.
#[test]
fn every_bundled_matrix_and_scenario_validates_against_its_schema() {
    for (folder, of) in [("matrices", "matrix"), ("scenarios", "scenario")] {
        let validator = jsonschema::draft7::new(&schema(of)).unwrap();
        let mut seen = 0;
        for entry in std::fs::read_dir(repo().join(folder)).unwrap().flatten() {
            let path = entry.path();
            let text = std::fs::read_to_string(&path).unwrap();
            let errors = schema_errors(&validator, &toml_as_json(&text));
            assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
            seen += 1;
        }
        assert!(seen >= 7, "{folder}: {seen} files");
    }
}

const BASE: &str = r#"[matrix]
name = "s"
[axes]
server = ["redis@7.4"]
[scenario]
kind = "cache-ops"
duration = "2s"
"#;

/// The schema and `cachegate check` agree: what one rejects the other rejects (unknown fields
/// among them), and what one accepts the other accepts.
#[test]
fn the_schema_rejects_what_check_rejects() {
    let validator = jsonschema::draft7::new(&schema("matrix")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let edit = |from: &str, to: &str| {
        assert!(BASE.contains(from), "{from}");
        BASE.replacen(from, to, 1)
    };
    let rejected = [
        (
            "unknown top-level table",
            format!("{BASE}[colour]\nred = 1\n"),
        ),
        (
            "unknown matrix field",
            edit("name = \"s\"", "name = \"s\"\nnmae = \"t\""),
        ),
        ("unknown scenario field", format!("{BASE}conections = 4\n")),
        ("missing axes.server", edit("server = [\"redis@7.4\"]", "")),
        ("field another kind reads", format!("{BASE}users = 3\n")),
        ("unknown kind", edit("cache-ops", "cache-opps")),
        ("unknown family", edit("redis@7.4", "redix@7.4")),
        ("four-part version", edit("redis@7.4", "redis@7.4.1.1")),
        (
            "zero save point",
            edit(
                "server = [\"redis@7.4\"]",
                "server = [\"redis@7.4\"]\npersistence = [\"rdb:0/1\"]",
            ),
        ),
        (
            "unknown fsync",
            edit(
                "server = [\"redis@7.4\"]",
                "server = [\"redis@7.4\"]\npersistence = [\"aof-sometimes\"]",
            ),
        ),
        (
            "topology out of range",
            edit(
                "server = [\"redis@7.4\"]",
                "server = [\"redis@7.4\"]\ntopology = [\"replica:9\"]",
            ),
        ),
        ("bad duration", edit("\"2s\"", "\"2 parsecs\"")),
        ("label in [scenario]", format!("{BASE}label = \"x\"\n")),
        (
            "variant without label",
            format!("{BASE}[[axes.variant]]\npipeline = 4\n"),
        ),
        (
            "variant with kind",
            format!("{BASE}[[axes.variant]]\nlabel = \"v\"\nkind = \"durability\"\n"),
        ),
        (
            "unknown gate metric",
            format!("{BASE}[gates]\n\"get.p98\" = \"< 2ms\"\n"),
        ),
        (
            "bad condition",
            format!("{BASE}[gates]\nerrors = \"about 0\"\n"),
        ),
        (
            "unknown server setting",
            format!("{BASE}[server]\nmaxmem = \"64mb\"\n"),
        ),
        ("zero workers", format!("{BASE}[target]\nworkers = 0\n")),
        (
            "stack without packages",
            format!("{BASE}[stacks.s]\npython = \"3.11\"\n"),
        ),
        ("wrong type", edit("\"2s\"", "2")),
    ];
    for (what, text) in &rejected {
        let errors = schema_errors(&validator, &toml_as_json(text));
        assert!(!errors.is_empty(), "{what}: the schema accepts\n{text}");
        write(dir.path(), "m.toml", text);
        let (code, out) = run_cli(dir.path(), &["check", "m.toml"]);
        assert_eq!(code, Some(2), "{what}: check accepts\n{text}\n{out}");
    }
    let accepted = [
        ("the base", BASE.to_string()),
        ("a bundled scenario by name", edit("kind = \"cache-ops\"", "use = \"cache-ops\"")),
        ("durations", edit("duration = \"2s\"", "duration = \"1m 30s\"\nwarmup = \"500ms\"\nttl = \"1h\"")),
        ("persistence and topology", edit("server = [\"redis@7.4\"]", "server = [\"redis@7\", \"valkey@9.1\"]\npersistence = [\"none\", \"rdb\", \"rdb:60/1,300/10+aof-everysec\", \"aof-no+rdb\"]\ntopology = [\"standalone\", \"cluster:3:1\", \"sentinel\"]")),
        ("gates", format!("{BASE}[gates]\n\"get.p99\" = \"< 2ms\"\nthroughput = \"> 50_000/s\"\nerrors = \"== 0\"\n")),
        ("variants", format!("{BASE}[[axes.variant]]\nlabel = \"p16\"\npipeline = 16\nvalue_size = [10, 100]\n")),
        ("settings and stacks", format!("{BASE}[stacks.\"django-5.2\"]\npackages = [\"django==5.2.*\"]\n[settings.a]\nSESSION_ENGINE = \"x\"\n[settings.a.CACHES.default]\nBACKEND = \"y\"\n")),
    ];
    for (what, text) in &accepted {
        let errors = schema_errors(&validator, &toml_as_json(text));
        assert!(errors.is_empty(), "{what}: {errors:#?}\n{text}");
        write(dir.path(), "m.toml", text);
        let (code, out) = run_cli(dir.path(), &["check", "m.toml"]);
        assert_eq!(code, Some(0), "{what}: check rejects\n{text}\n{out}");
    }
}

/// A scenario file may not `use` another or carry a variant's `label`, as the loader says.
#[test]
fn the_scenario_schema_refuses_matrix_only_fields() {
    let validator = jsonschema::draft7::new(&schema("scenario")).unwrap();
    for (text, ok) in [
        ("kind = \"login-flow\"\nusers = 4\n", true),
        ("kind = \"login-flow\"\nuse = \"cache-ops\"\n", false),
        ("kind = \"login-flow\"\nlabel = \"x\"\n", false),
        ("kind = \"login-flow\"\npipeline = 4\n", false),
        ("kind = \"cache-ops\"\npipeline = 4\n", true),
    ] {
        let errors = schema_errors(&validator, &toml_as_json(text));
        assert_eq!(errors.is_empty(), ok, "{text}: {errors:?}");
    }
}

/// The patterns of values parsed from strings accept exactly what their parsers accept, on
/// samples of each grammar.
#[test]
fn string_patterns_agree_with_the_parsers() {
    use cachegate::config::gates::{Condition, Metric};
    use cachegate::config::HumanDuration;
    use cachegate::server::{Persistence, ServerRef, Topology};
    let matrix = schema("matrix");
    let mut defs = matrix["definitions"].clone();
    // A metric is a `[gates]` key: its pattern is the table's property pattern.
    let gates = matrix["properties"]["gates"]["patternProperties"]
        .as_object()
        .unwrap();
    let metric = gates.keys().next().unwrap();
    defs["Metric"] = serde_json::json!({ "type": "string", "pattern": metric });
    fn parses<T: std::str::FromStr>(s: &str) -> bool {
        s.parse::<T>().is_ok()
    }
    /// A definition, its parser, and samples of both kinds.
    type Grammar<'a> = (&'a str, fn(&str) -> bool, &'a [&'a str]);
    let grammars: [Grammar; 6] = [
        (
            "Server",
            parses::<ServerRef>,
            &[
                "redis@7",
                "redis@7.4",
                "valkey@9.1.2",
                "memcached@1.6",
                "none",
                "redis@7.4.1.1",
                "redis7",
                "redis@",
                "redis@x",
                "keydb@6",
                "None",
            ],
        ),
        (
            "Persistence",
            parses::<Persistence>,
            &[
                "none",
                "rdb",
                "rdb:60/1",
                "rdb:60/1,300/10",
                "aof-always",
                "aof-everysec",
                "aof-no",
                "rdb+aof-everysec",
                "aof-no+rdb:1/1",
                "rdb:0/1",
                "rdb:60",
                "aof",
                "rdb+rdb",
                "aof-no+aof-always",
                "rdb+",
                "",
            ],
        ),
        (
            "Topology",
            parses::<Topology>,
            &[
                "standalone",
                "replica:1",
                "replica:5",
                "replica:6",
                "replica:0",
                "sentinel",
                "sentinel:3",
                "sentinel:4",
                "cluster:3",
                "cluster:9:2",
                "cluster:10",
                "cluster:3:3",
                "cluster",
                "replica",
            ],
        ),
        (
            "Duration",
            parses::<HumanDuration>,
            &[
                "0",
                "5s",
                "500ms",
                "2m",
                "1h 30m",
                "1h30m",
                "1.5s",
                "10 s",
                "3 days",
                "2µs",
                "5",
                "s",
                "5 parsecs",
                "-1s",
                "1.s",
                "",
            ],
        ),
        (
            "Metric",
            parses::<Metric>,
            &[
                "p99",
                "get.p99",
                "all.throughput",
                "errors",
                "lost",
                "sessions_lost",
                "recovery_seconds",
                "set.failed_p99",
                "get.lost",
                "p98",
                "get.",
                "throughput.x",
            ],
        ),
        (
            "Condition",
            parses::<Condition>,
            &[
                "< 2ms",
                "<2ms",
                "> 50000",
                ">= 50_000/s",
                "== 0",
                "<= 1.5s",
                "< 300us",
                "< 300µs",
                " < 2 ms ",
                "about 5",
                "< 2 parsecs",
                "<",
                "= 1",
                "< 5m",
            ],
        ),
    ];
    for (name, parser, samples) in grammars {
        let def = &defs[name];
        assert!(def["pattern"].is_string(), "{name}: {def}");
        let validator = jsonschema::draft7::new(def).unwrap();
        for s in samples {
            let by_schema = validator.is_valid(&serde_json::json!(s));
            assert_eq!(by_schema, parser(s), "{name} `{s}`: schema {by_schema}");
        }
    }
}

// ---- Shell completions and man pages ----

fn stdout_of(args: &[&str]) -> String {
    let out = common::cachegate().args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        common::output_text(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every shell's script names the subcommands; bash's really completes them when sourced.
#[test]
fn completion_scripts_complete_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        for word in [
            "cachegate",
            "run",
            "check",
            "list",
            "schema",
            "completions",
            "filter",
        ] {
            assert!(script.contains(word), "{shell}: no `{word}`");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let script = write(
        dir.path(),
        "cachegate.bash",
        &stdout_of(&["completions", "bash"]),
    );
    // What bash offers after `cachegate sch<TAB>` and `cachegate run --fi<TAB>`.
    let complete = |words: &str| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                 _cachegate cachegate \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
                 echo \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", common::output_text(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(complete("cachegate sch"), "schema");
    assert_eq!(complete("cachegate run --fi"), "--filter");
    assert_eq!(complete("cachegate schema s"), "scenario");
}

/// `man` prints a roff page with every subcommand; `man SUBCOMMAND` that subcommand's page.
#[test]
fn man_pages_are_generated_for_cachegate_and_each_subcommand() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH cachegate 1"), "{page}");
    for sub in [
        "run",
        "check",
        "list",
        "schema",
        "completions",
        "man",
        "servers",
    ] {
        assert!(
            page.contains(&format!("cachegate\\-{sub}(1)")),
            "{sub}: {page}"
        );
    }
    assert!(page.contains("Exit codes"), "{page}");
    let run = stdout_of(&["man", "run"]);
    let title = format!(
        ".TH cachegate-run 1  \"cachegate {}\"",
        env!("CARGO_PKG_VERSION")
    );
    assert!(run.contains(&title), "{run}");
    assert!(
        run.contains("\\-\\-filter") && run.contains("bundled into cachegate"),
        "{run}"
    );
    let (code, text) = run_cli(Path::new("."), &["man", "rnu"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("no subcommand `rnu` (there are: run, check"),
        "{text}"
    );
    // Rendered by the system's man, where there is one: the page reads as text.
    if Path::new("/usr/bin/man").exists() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "cachegate-run.1", &run);
        let out = std::process::Command::new("man")
            .arg("-l")
            .arg(&file)
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", common::output_text(&out));
        assert!(
            text.contains("cachegate-run") && text.contains("--filter"),
            "{text}"
        );
    }
}

// ---- `cachegate init` ----

/// Every file under `dir`, relative, with its contents.
fn tree(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                files.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// `init` in a repository writes a matrix that `check` accepts and the schema validates, the
/// nightly workflow for it, and a .gitignore entry beside what was there; a second `init` is
/// refused with exit 2 and leaves every file as it was; bad flags write nothing.
#[test]
fn init_writes_a_working_starter_and_never_overwrites() {
    let repo_dir = tempfile::tempdir().unwrap();
    let dir = repo_dir.path();
    write(dir, ".gitignore", "target/\n*.pyc");
    let (code, text) = run_cli(
        dir,
        &["init", "--server", "redis@7.4", "--server", "valkey@9.1"],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("wrote matrices/sessions.toml"), "{text}");
    let files = tree(dir);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            ".github/workflows/cachegate-nightly-sessions.yml",
            ".gitignore",
            "matrices/sessions.toml"
        ]
    );
    assert_eq!(
        files[1].1,
        "target/\n*.pyc\n# cachegate's run folders\n/reports/\n"
    );

    // The matrix: by name, as the workflow runs it by path; one cell per server, 3 repeats.
    let (code, cells) = run_cli(dir, &["check", "sessions"]);
    assert_eq!(code, Some(0), "{cells}");
    assert!(cells.contains("6 cells OK"), "{cells}");
    assert!(
        cells.contains("valkey@9.1/none/ours/cache-sessions  [sessions #3]"),
        "{cells}"
    );
    let (code, _) = run_cli(dir, &["check", "matrices/sessions.toml"]);
    assert_eq!(code, Some(0));
    let validator = jsonschema::draft7::new(&schema("matrix")).unwrap();
    let errors = schema_errors(&validator, &toml_as_json(&files[2].1));
    assert!(errors.is_empty(), "{errors:#?}");

    // The workflow is YAML that runs this matrix against a baseline with the installed binary.
    let workflow: serde_json::Value = serde_yaml_ng::from_str(&files[0].1).unwrap();
    let steps = workflow["jobs"]["gate"]["steps"].as_array().unwrap();
    let run = steps
        .iter()
        .find(|s| s["id"] == "run")
        .and_then(|s| s["run"].as_str())
        .unwrap();
    assert!(
        run.contains("run matrices/sessions.toml --out reports") && run.contains("--baseline"),
        "{run}"
    );
    assert!(run.contains("cachegate \"${args[@]}\""), "{run}");
    assert!(!files[0].1.contains("{name}"), "{}", files[0].1);

    // Again: refused, nothing changed (not even .gitignore).
    let (code, text) = run_cli(dir, &["init"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("matrices/sessions.toml and .github/workflows/cachegate-nightly-sessions.yml already exists"),
        "{text}"
    );
    assert_eq!(tree(dir), files);
    // Bad flags: exit 2 naming the flag, nothing written.
    for (args, needle) in [
        (
            &["init", "--name", "other", "--server", "redis@4"][..],
            "--server `redis@4`",
        ),
        (&["init", "--name", "a/b"], "--name `a/b`"),
        (
            &["init", "--name", "other", "--django", "3.2"],
            "needs Django 4.0",
        ),
    ] {
        let (code, text) = run_cli(dir, args);
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(text.contains(needle), "{args:?}: {text}");
        assert_eq!(tree(dir), files, "{args:?}");
    }
    // Another name beside it, with django-redis and no workflow; .gitignore is left alone.
    let (code, text) = run_cli(
        dir,
        &[
            "init",
            "--name",
            "djredis",
            "--django-redis",
            "6",
            "--no-workflow",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(".gitignore already ignores reports/"),
        "{text}"
    );
    let (code, cells) = run_cli(dir, &["check", "djredis"]);
    assert_eq!(code, Some(0), "{cells}");
    assert_eq!(tree(dir).len(), 4);
}
