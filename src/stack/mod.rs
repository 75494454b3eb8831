//! Client stacks: a Python interpreter and pinned packages (Django, redis-py, django-redis,
//! hiredis, ...) provisioned once into a virtualenv cached under
//! `CACHE/stacks/NAME-HASH/`, keyed by the exact Python version and pins. gunicorn is added to
//! serve the app. A migrated template database is kept beside it so each cell copies it instead
//! of migrating. For a team's project (`[target] project`), the venv holds the project's
//! requirements with the stack's pins in their place, and is keyed by those requirements too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::target::app_files;

pub use crate::config::StackSpec;

/// A ready virtualenv.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionedStack {
    pub name: String,
    pub dir: PathBuf,
    /// Exact Python version of the venv.
    pub python_version: String,
    /// Installed versions of every package in the venv (pip list), e.g. django → 5.2.19.
    pub packages: BTreeMap<String, String>,
    /// The project's requirements as installed under the stack's pins (`[target] project`).
    pub requirements: Option<String>,
}

impl ProvisionedStack {
    pub fn python(&self) -> PathBuf {
        self.dir.join("venv/bin/python")
    }

    pub fn gunicorn(&self) -> PathBuf {
        self.dir.join("venv/bin/gunicorn")
    }

    /// A migrated SQLite database to copy for each app start (per app version).
    pub fn template_db(&self) -> PathBuf {
        self.dir
            .join(format!("template-{}.sqlite3", app_files::fingerprint()))
    }

    /// The versions that matter for compatibility, e.g. "Django 5.2.19, redis 5.2.1".
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("Python {}", self.python_version)];
        for name in ["django", "redis", "django-redis", "hiredis", "gunicorn"] {
            if let Some(v) = self.packages.get(name) {
                parts.push(format!("{name} {v}"));
            }
        }
        parts.join(", ")
    }
}

fn fail(name: &str, message: String) -> Error {
    Error::Provision {
        server: format!("stack `{name}`"),
        message,
    }
}

/// Find an interpreter for `version` ("3.12"): pyenv's newest matching version (complete builds,
/// with venv and pip), else `python3.12` on PATH.
pub fn find_python(version: &str) -> Option<PathBuf> {
    let exe = format!("python{version}");
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(&exe))
        .filter(|p| p.exists() && !p.to_string_lossy().contains("/shims/"));
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|h| h.join(".pyenv")));
    let from_pyenv = pyenv_root
        .and_then(|root| std::fs::read_dir(root.join("versions")).ok())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n == version || n.starts_with(&format!("{version}."))
        })
        .map(|e| e.path().join("bin").join(&exe))
        .filter(|p| p.exists());
    let mut pyenv: Vec<PathBuf> = from_pyenv.collect();
    pyenv.sort();
    pyenv.pop().or_else(|| on_path.into_iter().next())
}

/// Run a command to completion: its stdout, or the last lines of its stderr.
pub fn run(cmd: &mut Command, what: &str) -> std::result::Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        Err(format!(
            "{what} failed: {}",
            tail[tail.len().saturating_sub(3)..].join(" | ")
        ))
    }
}

/// Provision (or reuse) the venv for `spec`; for a team's project, with its `requirements`
/// (already without the packages the stack pins: `target::project::requirements_for`).
pub fn provision(
    name: &str,
    spec: &StackSpec,
    cache_dir: &Path,
    requirements: Option<String>,
) -> Result<ProvisionedStack> {
    let python = find_python(&spec.python).ok_or_else(|| {
        fail(
            name,
            format!(
                "Python {} not found (looked for python{} on PATH and in pyenv's versions); \
                 install it, e.g. `pyenv install {}`",
                spec.python, spec.python, spec.python
            ),
        )
    })?;
    let full_version = run(Command::new(&python).arg("--version"), "python --version")
        .map_err(|e| fail(name, e))?
        .trim()
        .trim_start_matches("Python ")
        .to_string();
    let mut pins = spec.packages.clone();
    pins.sort();
    let mut hasher = Sha256::new();
    hasher.update(full_version.as_bytes());
    for p in &pins {
        hasher.update(b"\0");
        hasher.update(p.as_bytes());
    }
    if let Some(r) = &requirements {
        hasher.update(b"\0requirements\0");
        hasher.update(r.as_bytes());
    }
    let hash: String = hasher
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = cache_dir.join("stacks").join(format!("{slug}-{hash}"));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;

    // Venvs are not relocatable, so it is built in place; a lock keeps concurrent runs (tests in
    // parallel) from building it twice, and READY marks a finished build.
    let _lock =
        FileLock::acquire(&dir.join(".lock")).map_err(|e| Error::io("locking the stack dir", e))?;
    if !dir.join("READY").exists() {
        build(name, spec, &python, &dir, requirements.as_deref())
            .map_err(|e| fail(name, format!("{e} (in {})", dir.display())))?;
        std::fs::write(dir.join("READY"), pins.join("\n"))
            .map_err(|e| Error::io("writing READY", e))?;
    }
    let list = run(
        Command::new(dir.join("venv/bin/python")).args([
            "-m",
            "pip",
            "list",
            "--format=json",
            "--disable-pip-version-check",
        ]),
        "pip list",
    )
    .map_err(|e| fail(name, e))?;
    let packages: Vec<BTreeMap<String, String>> =
        serde_json::from_str(&list).map_err(|e| fail(name, format!("pip list output: {e}")))?;
    let packages = packages
        .into_iter()
        .filter_map(|p| Some((p.get("name")?.to_lowercase(), p.get("version")?.clone())))
        .collect();
    let stack = ProvisionedStack {
        name: name.to_string(),
        dir,
        python_version: full_version,
        packages,
        requirements,
    };
    if stack.requirements.is_none() && !stack.template_db().exists() {
        migrate_template(&stack, cache_dir).map_err(|e| fail(name, e))?;
    }
    Ok(stack)
}

fn build(
    name: &str,
    spec: &StackSpec,
    python: &Path,
    dir: &Path,
    requirements: Option<&str>,
) -> std::result::Result<(), String> {
    let venv = dir.join("venv");
    if venv.exists() {
        std::fs::remove_dir_all(&venv)
            .map_err(|e| format!("cannot remove a half-built venv: {e}"))?;
    }
    eprintln!(
        "provisioning stack `{name}`: Python {} with {}",
        spec.python,
        spec.packages.join(" ")
    );
    run(
        Command::new(python).args(["-m", "venv"]).arg(&venv),
        "python -m venv",
    )?;
    let mut pip = Command::new(venv.join("bin/python"));
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]);
    if let Some(text) = requirements {
        // Kept beside the venv: what was installed, for anyone looking.
        let file = dir.join("project-requirements.txt");
        std::fs::write(&file, text).map_err(|e| format!("writing {}: {e}", file.display()))?;
        pip.arg("-r").arg(&file);
    }
    run(pip.args(&spec.packages).arg("gunicorn"), "pip install")?;
    Ok(())
}

/// Migrate a template database for the current app version, built with the app's defaults.
fn migrate_template(stack: &ProvisionedStack, cache_dir: &Path) -> std::result::Result<(), String> {
    let app = app_files::install(cache_dir).map_err(|e| format!("writing the app: {e}"))?;
    let tmp = stack.template_db().with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    run(
        Command::new(stack.python())
            .arg(app.join("manage.py"))
            .args(["migrate", "--noinput", "-v", "0"])
            .current_dir(&app)
            .env("CACHEGATE_DB", &tmp)
            .env_remove("CACHEGATE_SETTINGS"),
        "manage.py migrate",
    )?;
    std::fs::rename(&tmp, stack.template_db())
        .map_err(|e| format!("keeping the template database: {e}"))
}

/// An exclusive lock on a file (std's flock), released when the file is closed.
pub struct FileLock(#[allow(dead_code)] std::fs::File);

impl FileLock {
    pub fn acquire(path: &Path) -> std::io::Result<FileLock> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        file.lock()?;
        Ok(FileLock(file))
    }
}
