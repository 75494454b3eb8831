//! The dependency direction written in README's Layout section, kept by a test:
//!
//!   cli → runner → matrix → scenario → target → stack → server → report → judge → results → config → error/host/child/net/scratch
//!
//! A module may use modules to its right, never one to its left. Each `crate::` path in a source
//! file (comments left out) is checked against the layer of the file's module; known exceptions
//! are listed in `ALLOWED` with why, and an exception that is no longer needed fails the test too,
//! so the list only shrinks. `super::` paths stay inside their module and are not checked.

use std::collections::BTreeSet;
use std::path::Path;

/// Module paths and their layer, higher = nearer the user. The longest matching prefix counts.
const LAYERS: &[(&str, u32)] = &[
    ("", 0), // lib.rs: exit codes, the async runtime
    ("exit_code", 0),
    ("load_runtime", 0),
    ("error", 0),
    ("host", 0),
    ("child", 0),
    ("net", 0),     // free ports on 127.0.0.1
    ("scratch", 0), // the harness's temp folders and their owner
    ("config", 1),
    ("results", 2),
    ("judge", 3),
    ("report", 4),
    ("server", 5),
    ("stack", 6),
    // The bundled app's files: written to disk by the stack (its template database) and run
    // by target::app, so they sit below the stack.
    ("target::app_files", 6),
    ("target", 7),
    ("scenario", 8),
    ("matrix", 9),
    ("runner", 10),
    ("cli", 11),
    // Fuzz targets drive the parsers of every layer, like the command line does.
    ("fuzz_entry", 11),
];

/// (file, imported module, why) for the arrows that still run upward.
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "src/config/matrix_file.rs",
        "server",
        "config parses server axis values (ServerRef, Persistence, ServerSettings) whose types \
         live in src/server/ (the lead's); moving them into config is left for that work",
    ),
    (
        "src/config/scenario_file.rs",
        "server",
        "restart_persistence parses a server::Persistence (as above)",
    ),
    (
        "src/config/matrix_file.rs",
        "target",
        "config parses [target] into target::TargetSection",
    ),
    (
        "src/results/mod.rs",
        "server",
        "a result records the server's settings (server::ServerSettings, parsed by config as \
         above)",
    ),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS
        .iter()
        .filter(|(m, _)| m.is_empty() || module == *m || module.starts_with(&format!("{m}::")))
        .max_by_key(|(m, _)| m.len())
        .map(|(_, l)| *l)
}

/// `src/config/gates.rs` → `config::gates`, `src/target/mod.rs` → `target`, `src/lib.rs` → "".
fn module_of(file: &str) -> String {
    let path = file.trim_start_matches("src/").trim_end_matches(".rs");
    if path == "lib" {
        return String::new();
    }
    path.trim_end_matches("/mod").replace('/', "::")
}

/// The modules a source file names with `crate::` paths (first two segments), comments left out.
fn imports(source: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in source.lines() {
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        for (i, _) in code.match_indices("crate::") {
            let path: String = code[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            match segments.as_slice() {
                [] => {}
                [one] => {
                    out.insert(one.to_string());
                }
                [first, second, ..] => {
                    out.insert(format!("{first}::{second}"));
                }
            }
        }
    }
    out
}

/// (imported module, its top-level name) for every import of `module` from a higher layer.
fn upward(module: &str, source: &str) -> Vec<(String, String)> {
    let own = layer(module).unwrap_or_else(|| panic!("module `{module}` has no layer in LAYERS"));
    imports(source)
        .into_iter()
        .filter(|imported| {
            // `crate::Foo` of a type re-exported at the root names no module: its first segment
            // decides.
            let l = layer(imported).or_else(|| layer(imported.split("::").next().unwrap()));
            l.unwrap_or_else(|| panic!("`crate::{imported}` (in {module}) has no layer in LAYERS"))
                > own
        })
        .map(|imported| {
            let top = imported.split("::").next().unwrap().to_string();
            (imported, top)
        })
        .collect()
}

#[test]
fn the_checker_sees_an_upward_import_and_ignores_comments_and_downward_ones() {
    // A deliberately wrong import: config using the runner.
    assert_eq!(
        upward("config::gates", "use crate::runner::RunOptions;\n"),
        [("runner::RunOptions".to_string(), "runner".to_string())]
    );
    assert_eq!(
        upward(
            "results",
            "    let x = crate::scenario::promise::expect(a);\n"
        )
        .len(),
        1
    );
    // Downward, comments, the same module: fine.
    assert!(upward("runner::cell", "use crate::results::CellResult;\n").is_empty());
    assert!(upward(
        "config",
        "//! see `crate::judge`\nlet a = 1; // crate::cli\n"
    )
    .is_empty());
    assert!(upward("scenario::outage", "use crate::scenario::resp::Endpoint;\n").is_empty());
    assert!(upward("stack", "use crate::target::app_files;\n").is_empty());
    assert_eq!(
        upward("stack", "use crate::target::app::AppProcess;\n").len(),
        1
    );
    assert_eq!(module_of("src/config/gates.rs"), "config::gates");
    assert_eq!(module_of("src/target/mod.rs"), "target");
    assert_eq!(module_of("src/matrix.rs"), "matrix");
    assert_eq!(module_of("src/lib.rs"), "");
}

fn rust_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.to_string_lossy().into_owned());
        }
    }
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let prefix = format!("{}/", root.display());
    let mut files: Vec<String> = files
        .into_iter()
        .map(|f| f.trim_start_matches(&prefix).to_string())
        .collect();
    files.sort();
    let mut wrong = Vec::new();
    let mut used = BTreeSet::new();
    for file in files.iter().filter(|f| *f != "src/main.rs") {
        let source = std::fs::read_to_string(root.join(file)).unwrap();
        for (imported, top) in upward(&module_of(file), &source) {
            match ALLOWED.iter().position(|(f, m, _)| f == file && *m == top) {
                Some(i) => {
                    used.insert(i);
                }
                None => wrong.push(format!("{file} uses crate::{imported}")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports from a layer above (README, Layout):\n{}",
        wrong.join("\n")
    );
    let stale: Vec<_> = (0..ALLOWED.len())
        .filter(|i| !used.contains(i))
        .map(|i| format!("{} -> {}", ALLOWED[i].0, ALLOWED[i].1))
        .collect();
    assert!(
        stale.is_empty(),
        "these exceptions are no longer needed; remove them from ALLOWED:\n{}",
        stale.join("\n")
    );
}
