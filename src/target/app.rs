//! The app under test served by gunicorn from a stack's venv, on a free 127.0.0.1 port, with the
//! cell's Django settings and a private copy of a migrated database: the bundled reference app,
//! or a team's own project (`AppCode`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::child::ManagedChild;
use crate::error::{Error, Result};
use crate::net::free_port;
use crate::stack::ProvisionedStack;

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How gunicorn serves the app: worker processes and threads in each.
#[derive(Debug, Clone, Copy)]
pub struct Workers {
    pub processes: u32,
    /// 1: the sync worker (a connection per request). Above 1: the gthread worker (keep-alive).
    pub threads: u32,
}

impl Workers {
    /// The `[target]` section's choice: 2 sync workers unless it says otherwise.
    pub fn of(target: &crate::target::TargetSection) -> Workers {
        Workers {
            processes: target.workers.map_or(2, |n| n.get()),
            threads: target.threads.map_or(1, |n| n.get()),
        }
    }
}

/// Which Django code gunicorn serves.
#[derive(Debug, Clone)]
pub enum AppCode {
    /// The bundled reference app, written out in this folder.
    Bundled(PathBuf),
    /// A team's project, with cachegate's hook (generated settings, exception reporting) in the
    /// `hook` folder.
    Project {
        project: crate::target::project::Project,
        hook: PathBuf,
    },
}

impl AppCode {
    /// The code a target names: its project, else the bundled app (written to the cache once).
    pub fn of(target: &crate::target::TargetSection) -> std::result::Result<AppCode, String> {
        let cache = crate::server::provision::default_cache_dir();
        match crate::target::project::Project::of(target) {
            Some(project) => Ok(AppCode::Project {
                project,
                hook: crate::target::project::install_hook(&cache)
                    .map_err(|e| format!("writing cachegate's project hook: {e}"))?,
            }),
            None => crate::target::app_files::install(&cache)
                .map(AppCode::Bundled)
                .map_err(|e| format!("writing the bundled app: {e}")),
        }
    }

    /// "bundled django app", or the project's folder.
    pub fn describe(&self) -> String {
        match self {
            AppCode::Bundled(_) => "bundled django app".into(),
            AppCode::Project { project, .. } => {
                format!("django project {}", project.dir.display())
            }
        }
    }

    /// The migrated database each app start copies.
    fn template_db(&self, stack: &ProvisionedStack) -> Result<PathBuf> {
        match self {
            AppCode::Bundled(_) => Ok(stack.template_db()),
            AppCode::Project { project, hook } => {
                crate::target::project::template_db(stack, project, hook).map_err(|message| {
                    Error::Server {
                        server: "app".into(),
                        message,
                    }
                })
            }
        }
    }

    /// gunicorn in the code's folder, serving its WSGI application with `settings` and `db`.
    fn gunicorn(
        &self,
        stack: &ProvisionedStack,
        settings: &serde_json::Value,
        db: &Path,
    ) -> Command {
        let mut cmd = Command::new(stack.gunicorn());
        match self {
            AppCode::Bundled(dir) => {
                cmd.arg("--chdir")
                    .arg(dir)
                    .current_dir(dir)
                    .env("DJANGO_SETTINGS_MODULE", "cgapp.settings")
                    .env("CACHEGATE_SETTINGS", settings.to_string())
                    .env("CACHEGATE_DB", db)
                    .env("PYTHONDONTWRITEBYTECODE", "1")
                    .env("PYTHONUNBUFFERED", "1");
            }
            AppCode::Project { project, hook } => {
                cmd.arg("--chdir")
                    .arg(&project.dir)
                    .arg("--pythonpath")
                    .arg(hook);
                crate::target::project::set_env(&mut cmd, project, hook, settings, db);
            }
        }
        cmd
    }

    fn wsgi(&self) -> &str {
        match self {
            AppCode::Bundled(_) => "cgapp.wsgi:application",
            AppCode::Project { project, .. } => &project.wsgi,
        }
    }

    /// The page that says the app is up without touching cache or session: the bundled app's
    /// `/health/`; a project's login page (`paths.login`), which Django renders from templates.
    fn health_path<'a>(&self, target: &'a crate::target::TargetSection) -> &'a str {
        match self {
            AppCode::Bundled(_) => "/health/",
            AppCode::Project { .. } => &target.paths.login,
        }
    }
}

pub struct AppProcess {
    child: Option<ManagedChild>,
    port: u16,
    db: PathBuf,
    workdir: tempfile::TempDir,
    /// Milliseconds from spawn to the first healthy answer.
    pub start_ms: f64,
}

impl AppProcess {
    /// Start the app with `settings` (a JSON object of Django settings) and wait until its
    /// health page answers.
    pub async fn start(
        stack: &ProvisionedStack,
        code: &AppCode,
        target: &crate::target::TargetSection,
        settings: &serde_json::Value,
    ) -> Result<AppProcess> {
        Self::start_on(stack, code, target, settings, None).await
    }

    /// The database file the app uses (its accounts).
    pub fn db_path(&self) -> PathBuf {
        self.db.clone()
    }

    /// Start the app; with `db`, on another app's database (the same accounts) instead of a
    /// fresh copy of the stack's template.
    pub async fn start_on(
        stack: &ProvisionedStack,
        code: &AppCode,
        target: &crate::target::TargetSection,
        settings: &serde_json::Value,
        db: Option<&Path>,
    ) -> Result<AppProcess> {
        let workers = Workers::of(target);
        let workdir = crate::scratch::temp_dir("app")
            .map_err(|e| Error::io("creating the app's temp dir", e))?;
        let db = match db {
            Some(shared) => shared.to_path_buf(),
            None => {
                let db = workdir.path().join("db.sqlite3");
                std::fs::copy(code.template_db(stack)?, &db)
                    .map_err(|e| Error::io("copying the template database", e))?;
                db
            }
        };
        let port = free_port()?;
        let mut cmd = code.gunicorn(stack, settings, &db);
        cmd.arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--workers", &workers.processes.to_string()])
            .args(["--threads", &workers.threads.to_string()])
            .args(["--error-logfile", "-", "--log-level", "warning"])
            // Slow cache calls (retrying clients) must show as slow requests, not worker kills.
            .args(["--timeout", "120", "--graceful-timeout", "5"])
            .arg(code.wsgi());
        let log = workdir.path().join("app.log");
        let started = Instant::now();
        let child = ManagedChild::spawn(cmd, &log).map_err(|e| Error::Server {
            server: "app".into(),
            message: format!("cannot run {}: {e}", stack.gunicorn().display()),
        })?;
        let mut app = AppProcess {
            child: Some(child),
            port,
            db,
            workdir,
            start_ms: 0.0,
        };
        app.wait_healthy(started, code.health_path(target)).await?;
        Ok(app)
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// gunicorn's master process, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(ManagedChild::pid)
    }

    pub fn log_path(&self) -> PathBuf {
        self.workdir.path().join("app.log")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    async fn wait_healthy(&mut self, started: Instant, health: &str) -> Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .expect("a plain HTTP client builds");
        let url = format!("{}{health}", self.base_url());
        loop {
            let running = self.child.as_mut().is_some_and(ManagedChild::is_running);
            if !running {
                return Err(self.fail("exited during start-up"));
            }
            if let Ok(r) = client.get(&url).send().await {
                if r.status().is_success() {
                    self.start_ms = started.elapsed().as_secs_f64() * 1000.0;
                    tracing::debug!(url = %self.base_url(), ms = %format_args!("{:.0}", self.start_ms), "app ready");
                    return Ok(());
                }
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(self.fail(&format!("did not answer {url} within {READY_TIMEOUT:?}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn fail(&mut self, what: &str) -> Error {
        if let Some(mut c) = self.child.take() {
            c.kill_now();
        }
        let log = self.log_text();
        let tail: Vec<&str> = log.lines().rev().take(8).collect();
        Error::Server {
            server: "app".into(),
            message: format!(
                "{what}; log: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
        }
    }

    /// Stop gunicorn (master and workers) and keep a copy of its log.
    pub async fn stop(&mut self, keep_log: Option<&Path>) {
        if let Some(mut child) = self.child.take() {
            child.signal(libc::SIGTERM);
            child.wait_or_kill(Duration::from_secs(10)).await;
        }
        if let Some(dest) = keep_log {
            let _ = std::fs::copy(self.log_path(), dest);
        }
    }
}
