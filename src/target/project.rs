//! A team's own Django project as the target (`[target] project`): its requirements under each
//! stack's pins, its migrations on a scratch database, its own user model for the accounts a
//! form login signs in with, and the hook that makes it report its exceptions and test results.
//!
//! Nothing is written into the project: the settings module that wraps the project's own
//! (`targets/project-hook/cachegate_project_settings.py`) and the `cachegate_hook` app live in
//! the cache and are put on PYTHONPATH; databases live in the stack's folder (the migrated
//! template) and in each app's temp folder; Python writes no bytecode.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::protocol::Account;
use super::TargetSection;
use crate::stack::ProvisionedStack;

/// The project as a matrix names it, with its folder made absolute when the matrix was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub dir: PathBuf,
    /// Its settings module ("mysite.settings").
    pub settings: String,
    /// Its WSGI application ("mysite.wsgi:application").
    pub wsgi: String,
    /// Its requirements file, if it has one.
    pub requirements: Option<PathBuf>,
}

/// The requirements a stack for `target`'s project installs besides its pins (`None` for the
/// bundled app, or a project without a requirements file).
pub fn requirements_for(
    target: &TargetSection,
    spec: &crate::stack::StackSpec,
) -> Result<Option<String>, String> {
    match Project::of(target) {
        Some(p) => p.requirements_under(&spec.packages),
        None => Ok(None),
    }
}

/// The hook's files, compiled in like the bundled app.
const HOOK_FILES: &[(&str, &str)] = &[
    (
        "cachegate_project_settings.py",
        include_str!("../../targets/project-hook/cachegate_project_settings.py"),
    ),
    (
        "cachegate_hook/__init__.py",
        include_str!("../../targets/project-hook/cachegate_hook/__init__.py"),
    ),
    (
        "cachegate_hook/apps.py",
        include_str!("../../targets/project-hook/cachegate_hook/apps.py"),
    ),
    (
        "cachegate_hook/accounts.py",
        include_str!("../../targets/project-hook/cachegate_hook/accounts.py"),
    ),
    (
        "cachegate_hook/runner.py",
        include_str!("../../targets/project-hook/cachegate_hook/runner.py"),
    ),
    // The same exception records as the bundled app's: one reader for both.
    (
        "cachegate_hook/exceptions.py",
        include_str!("../../targets/django/cgapp/exceptions.py"),
    ),
];

/// The bookshelf example project (tests/projects/bookshelf), compiled in so that the bundled
/// own-project matrices run by name from anywhere: written to the cache when one names it.
const BOOKSHELF: &[(&str, &str)] = &[
    (
        "accounts/__init__.py",
        include_str!("../../tests/projects/bookshelf/accounts/__init__.py"),
    ),
    (
        "accounts/apps.py",
        include_str!("../../tests/projects/bookshelf/accounts/apps.py"),
    ),
    (
        "accounts/migrations/0001_initial.py",
        include_str!("../../tests/projects/bookshelf/accounts/migrations/0001_initial.py"),
    ),
    (
        "accounts/migrations/__init__.py",
        include_str!("../../tests/projects/bookshelf/accounts/migrations/__init__.py"),
    ),
    (
        "accounts/models.py",
        include_str!("../../tests/projects/bookshelf/accounts/models.py"),
    ),
    (
        "bookshelf/__init__.py",
        include_str!("../../tests/projects/bookshelf/bookshelf/__init__.py"),
    ),
    (
        "bookshelf/settings.py",
        include_str!("../../tests/projects/bookshelf/bookshelf/settings.py"),
    ),
    (
        "bookshelf/tests.py",
        include_str!("../../tests/projects/bookshelf/bookshelf/tests.py"),
    ),
    (
        "bookshelf/urls.py",
        include_str!("../../tests/projects/bookshelf/bookshelf/urls.py"),
    ),
    (
        "bookshelf/views.py",
        include_str!("../../tests/projects/bookshelf/bookshelf/views.py"),
    ),
    (
        "bookshelf/wsgi.py",
        include_str!("../../tests/projects/bookshelf/bookshelf/wsgi.py"),
    ),
    (
        "manage.py",
        include_str!("../../tests/projects/bookshelf/manage.py"),
    ),
    (
        "requirements.txt",
        include_str!("../../tests/projects/bookshelf/requirements.txt"),
    ),
    (
        "templates/registration/logged_out.html",
        include_str!("../../tests/projects/bookshelf/templates/registration/logged_out.html"),
    ),
    (
        "templates/registration/login.html",
        include_str!("../../tests/projects/bookshelf/templates/registration/login.html"),
    ),
    (
        "templates/shelf.html",
        include_str!("../../tests/projects/bookshelf/templates/shelf.html"),
    ),
];

/// A bundled matrix's `project = "../tests/projects/NAME"`: the compiled-in example written to
/// `CACHE/targets/example-NAME-HASH/`, if there is one by that name.
pub fn bundled_example(relative: &Path) -> Option<PathBuf> {
    if relative != Path::new("../tests/projects/bookshelf") {
        return None;
    }
    let cache = crate::server::provision::default_cache_dir();
    super::app_files::install_files(&cache, "example-bookshelf", BOOKSHELF).ok()
}

/// The module the project runs with (it imports the project's own settings first).
pub const SETTINGS_MODULE: &str = "cachegate_project_settings";

impl Project {
    /// The project a target names, if any (its folder already resolved by the matrix loader).
    pub fn of(target: &TargetSection) -> Option<Project> {
        let dir = target.project.clone()?;
        let settings = target.settings.clone().unwrap_or_default();
        let package = settings.split('.').next().unwrap_or_default().to_string();
        let requirements = match &target.requirements {
            Some(r) => Some(dir.join(r)),
            None => Some(dir.join("requirements.txt")).filter(|p| p.is_file()),
        };
        Some(Project {
            wsgi: target
                .wsgi
                .clone()
                .unwrap_or_else(|| format!("{package}.wsgi:application")),
            settings,
            requirements,
            dir,
        })
    }

    /// What is wrong with the project folder, if anything: checked when the matrix is loaded.
    pub fn problem(&self) -> Option<String> {
        let dir = self.dir.display();
        if !self.dir.join("manage.py").is_file() {
            return Some(format!(
                "{dir} has no manage.py (name the project's folder)"
            ));
        }
        if self.settings.is_empty() {
            return Some("`settings` (the project's settings module) is required".into());
        }
        let module = self.dir.join(self.settings.replace('.', "/"));
        if !module.with_extension("py").is_file() && !module.join("__init__.py").is_file() {
            return Some(format!(
                "settings module `{}` is not in {dir}",
                self.settings
            ));
        }
        if !self.wsgi.contains(':') {
            return Some(format!(
                "wsgi `{}`: expected MODULE:APPLICATION, e.g. mysite.wsgi:application",
                self.wsgi
            ));
        }
        match &self.requirements {
            Some(r) if !r.is_file() => Some(format!("requirements file {} not found", r.display())),
            _ => None,
        }
    }

    /// A short hash of the project's sources (Python files, templates, requirements): a changed
    /// project gets a freshly migrated template database.
    pub fn fingerprint(&self) -> String {
        let mut files = Vec::new();
        collect_sources(&self.dir, &mut files);
        files.sort();
        let mut h = Sha256::new();
        h.update(self.settings.as_bytes());
        for f in files {
            h.update(
                f.strip_prefix(&self.dir)
                    .unwrap_or(&f)
                    .to_string_lossy()
                    .as_bytes(),
            );
            h.update(std::fs::read(&f).unwrap_or_default());
        }
        short(h)
    }

    /// The project's requirements with every package the stack pins taken out (the stack's pin
    /// wins), `--hash` options dropped (a lock's hashes cannot cover the stack's pins) and
    /// included files made absolute. `None` when the project has no requirements file.
    pub fn requirements_under(&self, pins: &[String]) -> Result<Option<String>, String> {
        let Some(path) = &self.requirements else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let pinned: Vec<String> = pins.iter().filter_map(|p| package_name(p)).collect();
        let base = path.parent().unwrap_or(&self.dir);
        let mut out = Vec::new();
        // Continuation lines (a lock's `\` + hashes) are joined first.
        for line in text.replace("\\\n", " ").lines() {
            let line = line.split(" #").next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = ["-r ", "-c ", "--requirement ", "--constraint "]
                .iter()
                .find_map(|o| line.strip_prefix(o).map(|r| (o, r.trim())))
            {
                out.push(format!("{}{}", rest.0, base.join(rest.1).display()));
                continue;
            }
            if line.starts_with('-') {
                out.push(line.to_string());
                continue;
            }
            let requirement: Vec<&str> = line
                .split_whitespace()
                .filter(|w| !w.starts_with("--hash"))
                .collect();
            let requirement = requirement.join(" ");
            match package_name(&requirement) {
                Some(name) if pinned.contains(&name) => {}
                _ => out.push(requirement),
            }
        }
        Ok(Some(out.join("\n") + "\n"))
    }
}

fn short(h: Sha256) -> String {
    h.finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn collect_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name == "__pycache__" || name == "node_modules" {
            continue;
        }
        let path = e.path();
        if path.is_dir() {
            collect_sources(&path, out);
        } else if [".py", ".html", ".txt", ".toml", ".cfg"]
            .iter()
            .any(|x| name.ends_with(x))
        {
            out.push(path);
        }
    }
}

/// A requirement's package name, normalized as PEP 503 does ("Django>=4" → "django",
/// "django_redis[x]==5" → "django-redis").
pub fn package_name(requirement: &str) -> Option<String> {
    let name: String = requirement
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    if name.is_empty() {
        return None;
    }
    let mut out = String::new();
    for c in name.to_ascii_lowercase().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Write the hook under `CACHE/targets/project-hook-HASH/` (once) and return that folder.
pub fn install_hook(cache_dir: &Path) -> std::io::Result<PathBuf> {
    super::app_files::install_files(cache_dir, "project-hook", HOOK_FILES)
}

/// A Python process of the project on `stack`: in the project's folder, with the hook on the
/// path, the generated settings module, the cell's settings and database, and no bytecode
/// written into the project.
pub fn python(
    stack: &ProvisionedStack,
    project: &Project,
    hook: &Path,
    settings: &serde_json::Value,
    db: &Path,
) -> Command {
    let mut cmd = Command::new(stack.python());
    set_env(&mut cmd, project, hook, settings, db);
    cmd
}

/// The environment every process of the project gets (gunicorn's too).
pub fn set_env(
    cmd: &mut Command,
    project: &Project,
    hook: &Path,
    settings: &serde_json::Value,
    db: &Path,
) {
    cmd.current_dir(&project.dir)
        .env("PYTHONPATH", hook)
        .env("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)
        .env("CACHEGATE_PROJECT_SETTINGS", &project.settings)
        .env("CACHEGATE_SETTINGS", settings.to_string())
        .env("CACHEGATE_DB", db)
        .env("CACHEGATE_APP_ROOT", &project.dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");
}

/// The project's migrated template database on `stack` (made once per project version, under a
/// lock so parallel runs do not migrate twice). Migrations run with the project's own settings
/// apart from the database: they touch no cache.
pub fn template_db(
    stack: &ProvisionedStack,
    project: &Project,
    hook: &Path,
) -> Result<PathBuf, String> {
    let db = stack
        .dir
        .join(format!("project-{}.sqlite3", project.fingerprint()));
    let _lock = crate::stack::FileLock::acquire(&stack.dir.join(".project-lock"))
        .map_err(|e| format!("locking the stack folder: {e}"))?;
    if db.exists() {
        return Ok(db);
    }
    let tmp = db.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    let empty = serde_json::json!({});
    crate::stack::run(
        python(stack, project, hook, &empty, &tmp)
            .arg("manage.py")
            .args(["migrate", "--noinput", "-v", "0"]),
        "manage.py migrate (the project's migrations)",
    )?;
    std::fs::rename(&tmp, &db).map_err(|e| format!("keeping the template database: {e}"))?;
    Ok(db)
}

/// The SESSION_ENGINE the project really runs with under the cell's settings (its own settings
/// module's, unless the matrix sets one): what session verdicts are judged against.
pub fn session_engine(
    stack: &ProvisionedStack,
    project: &Project,
    hook: &Path,
    settings: &serde_json::Value,
    db: &Path,
) -> Result<String, String> {
    let out = crate::stack::run(
        python(stack, project, hook, settings, db).args([
            "-c",
            "import django; django.setup(); from django.conf import settings; \
             print(settings.SESSION_ENGINE)",
        ]),
        "reading the project's SESSION_ENGINE",
    )?;
    out.lines()
        .last()
        .map(|l| l.trim().to_string())
        .ok_or_else(|| "the project printed no SESSION_ENGINE".into())
}

/// Create `count` accounts on the app's database through the project's user model (its
/// manager's `create_user`), under the cell's settings (its PASSWORD_HASHERS, say). Returns the
/// accounts and the model ("accounts.User").
pub fn create_accounts(
    stack: &ProvisionedStack,
    project: &Project,
    hook: &Path,
    settings: &serde_json::Value,
    db: &Path,
    tag: &str,
    count: u32,
) -> Result<(Vec<Account>, String), String> {
    let password = format!("Cg-{tag}-form-pw");
    let out = crate::stack::run(
        python(stack, project, hook, settings, db)
            .args(["-m", "cachegate_hook.accounts", tag, &count.to_string()])
            .env("CACHEGATE_ACCOUNT_PASSWORD", &password),
        "creating the accounts through the project's user model",
    )?;
    #[derive(serde::Deserialize)]
    struct Made {
        model: String,
        logins: Vec<String>,
    }
    let made: Made = out
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| format!("the account script printed no result: {out}"))?;
    let accounts = made
        .logins
        .into_iter()
        .map(|login| Account {
            login,
            password: password.clone(),
        })
        .collect();
    Ok((accounts, made.model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_example_is_the_whole_example_project() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/projects/bookshelf");
        let mut files = Vec::new();
        let mut todo = vec![root.clone()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                match e.path() {
                    p if p.is_dir() => todo.push(p),
                    p => files.push(p.strip_prefix(&root).unwrap().display().to_string()),
                }
            }
        }
        files.sort();
        let embedded: Vec<String> = BOOKSHELF.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(
            files, embedded,
            "list every file of the example in BOOKSHELF"
        );
    }

    #[test]
    fn the_stack_pins_replace_the_projects_own_requirements() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("manage.py"), "").unwrap();
        let reqs = "# ours\nDjango>=4.2,<5.0  # what we deploy\ndjango_redis==5.4.0 \\\n    --hash=sha256:abc\nrequests[socks]>=2\n-r base.txt\n--index-url https://pypi.org/simple\n";
        std::fs::write(dir.path().join("requirements.txt"), reqs).unwrap();
        let target = TargetSection {
            project: Some(dir.path().to_path_buf()),
            settings: Some("mysite.settings".into()),
            ..Default::default()
        };
        let p = Project::of(&target).unwrap();
        assert_eq!(p.wsgi, "mysite.wsgi:application");
        let text = p
            .requirements_under(&["django==5.2.*".into(), "Django-Redis==6.*".into()])
            .unwrap()
            .unwrap();
        let base = dir.path().join("base.txt");
        assert_eq!(
            text,
            format!(
                "requests[socks]>=2\n-r {}\n--index-url https://pypi.org/simple\n",
                base.display()
            )
        );
        assert_eq!(
            package_name("zope.interface>=5").as_deref(),
            Some("zope-interface")
        );
        assert!(p
            .problem()
            .unwrap()
            .contains("settings module `mysite.settings`"));
    }
}
