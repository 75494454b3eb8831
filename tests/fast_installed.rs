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
