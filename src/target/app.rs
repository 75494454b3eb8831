//! The bundled reference app served by gunicorn from a stack's venv, on a free 127.0.0.1 port,
//! with the cell's Django settings and a private copy of the stack's migrated database.

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

pub struct AppProcess {
    child: Option<ManagedChild>,
    port: u16,
    db: PathBuf,
    workdir: tempfile::TempDir,
    /// Milliseconds from spawn to the first healthy answer.
    pub start_ms: f64,
}

impl AppProcess {
    /// Start the app with `settings` (a JSON object of Django settings) and wait until
    /// `/health/` answers.
    pub async fn start(
        stack: &ProvisionedStack,
        app_dir: &Path,
        settings: &serde_json::Value,
        workers: Workers,
    ) -> Result<AppProcess> {
        Self::start_on(stack, app_dir, settings, workers, None).await
    }

    /// The database file the app uses (its accounts).
    pub fn db_path(&self) -> PathBuf {
        self.db.clone()
    }

    /// Start the app; with `db`, on another app's database (the same accounts) instead of a
    /// fresh copy of the stack's template.
    pub async fn start_on(
        stack: &ProvisionedStack,
        app_dir: &Path,
        settings: &serde_json::Value,
        workers: Workers,
        db: Option<&Path>,
    ) -> Result<AppProcess> {
        let workdir = crate::scratch::temp_dir("app")
            .map_err(|e| Error::io("creating the app's temp dir", e))?;
        let db = match db {
            Some(shared) => shared.to_path_buf(),
            None => {
                let db = workdir.path().join("db.sqlite3");
                std::fs::copy(stack.template_db(), &db)
                    .map_err(|e| Error::io("copying the template database", e))?;
                db
            }
        };
        let port = free_port()?;
        let mut cmd = Command::new(stack.gunicorn());
        cmd.arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--workers", &workers.processes.to_string()])
            .args(["--threads", &workers.threads.to_string()])
            .args(["--error-logfile", "-", "--log-level", "warning"])
            // Slow cache calls (retrying clients) must show as slow requests, not worker kills.
            .args(["--timeout", "120", "--graceful-timeout", "5"])
            .arg("--chdir")
            .arg(app_dir)
            .arg("cgapp.wsgi:application")
            .current_dir(app_dir)
            .env("DJANGO_SETTINGS_MODULE", "cgapp.settings")
            .env("CACHEGATE_SETTINGS", settings.to_string())
            .env("CACHEGATE_DB", &db)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1");
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
        app.wait_healthy(started).await?;
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

    async fn wait_healthy(&mut self, started: Instant) -> Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .expect("a plain HTTP client builds");
        let url = format!("{}/health/", self.base_url());
        loop {
            let running = self.child.as_mut().is_some_and(ManagedChild::is_running);
            if !running {
                return Err(self.fail("exited during start-up"));
            }
            if let Ok(r) = client.get(&url).send().await {
                if r.status().is_success() {
                    self.start_ms = started.elapsed().as_secs_f64() * 1000.0;
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
