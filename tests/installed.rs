//! cachegate as an installed tool (issue 21): `cargo install` into a temporary root, then, in an
//! empty folder outside the source tree, the default job, `init` and the matrix init wrote, all
//! with the installed binary only. Real servers, the real app, real HTTP on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cachegate::results::store::read_jsonl;

/// The target folder this test was built in: `cargo install --debug` into the same one reuses
/// what `cargo test` just compiled instead of building everything again.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/installed-HASH
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}: {:?}\n{text}", out.status);
    text
}

/// The run folder under `out` whose name ends with `-NAME`, and its cells' verdicts.
fn verdicts(out: &Path, name: &str) -> Vec<(String, String)> {
    let dir = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.display().to_string().ends_with(&format!("-{name}")))
        .unwrap_or_else(|| panic!("no run folder for {name} in {}", out.display()));
    assert!(dir.join("index.html").is_file() && dir.join("summary.md").is_file());
    read_jsonl(&dir.join("results.jsonl"))
        .unwrap()
        .into_iter()
        .map(|r| (r.cell_id, format!("{:?}", r.verdict)))
        .collect()
}

#[test]
fn installed_binary_runs_the_default_job_init_and_its_matrix_outside_the_source_tree() {
    let root = tempfile::tempdir().unwrap();
    run(Command::new(env!("CARGO"))
        .args(["install", "--locked", "--debug", "--path"])
        .arg(env!("CARGO_MANIFEST_DIR"))
        .arg("--root")
        .arg(root.path())
        .env("CARGO_TARGET_DIR", target_dir()));
    let bin = root.path().join("bin/cachegate");
    assert!(bin.is_file(), "{} not installed", bin.display());

    let repo = tempfile::tempdir().unwrap();
    assert!(!repo.path().starts_with(env!("CARGO_MANIFEST_DIR")));
    let cachegate = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.args(args).current_dir(repo.path());
        run(&mut c)
    };
    let version = cachegate(&["--version"]);
    assert_eq!(
        version.trim(),
        format!("cachegate {}", env!("CARGO_PKG_VERSION"))
    );

    // The default job: the bundled quick matrix, every cell passing.
    cachegate(&["run", "--no-progress"]);
    let quick = verdicts(&repo.path().join("reports"), "quick");
    assert_eq!(quick.len(), 6, "{quick:?}");
    assert!(quick.iter().all(|(_, v)| v == "Pass"), "{quick:?}");

    // The starter init writes, run as a team would: by name, from the repository.
    let said = cachegate(&["init", "--server", "redis@7.4"]);
    assert!(said.contains("wrote matrices/sessions.toml"), "{said}");
    cachegate(&["run", "sessions", "--no-progress"]);
    let sessions = verdicts(&repo.path().join("reports"), "sessions");
    assert_eq!(
        sessions
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>(),
        ["redis@7.4/none/ours/cache-sessions"; 3],
    );
    assert!(sessions.iter().all(|(_, v)| v == "Pass"), "{sessions:?}");
    // Nothing but what init wrote and the run folders.
    let mut top: Vec<String> = std::fs::read_dir(repo.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, [".github", ".gitignore", "matrices", "reports"]);
}
