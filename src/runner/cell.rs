//! Running one cell: start its server (and app), run its scenario, stop everything, and turn what
//! was measured into a `CellResult` with a verdict.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::progress::CellProgress;
use crate::config::matrix_file::{ExpectedOutcome, RuntimeKind};
use crate::host::HostInfo;
use crate::matrix::Cell;
use crate::results::{CellResult, RunDir, ServerInfo, StackInfo, TopologyInfo, Verdict, SCHEMA};
use crate::scenario::CellEnv;
use crate::server::container::{ContainerLabels, ContainerServer};
use crate::server::deployment::Addresses;
use crate::server::external::ExternalServer;
use crate::server::no_server::NoServer;
use crate::server::{
    Deployment, Family, NodeStarter, ProvisionedServer, RunningServer, ServerProcess, ServerSpec,
    StopKind,
};
use crate::stack::ProvisionedStack;
use crate::target::app::{AppCode, AppProcess};
use crate::target::protocol::LoginKind;
use crate::target::{django_settings, exceptions};

pub struct CellContext<'a> {
    pub run_dir: &'a RunDir,
    pub host: &'a HostInfo,
    /// Prefix for every key the cell writes, so cells never read each other's data.
    pub key_prefix: String,
    /// Prefix for every account the cell registers.
    pub user_tag: String,
    pub cancel: CancellationToken,
    /// Which signal stopped the run, for the interrupted cell's record.
    pub interrupt: &'a super::Interrupt,
    /// `logs/NAME` without extension: unique within the run (see `log_names`).
    pub log_base: String,
    pub label: String,
    pub progress: bool,
}

pub fn repeat_suffix(cell: &Cell) -> String {
    if cell.repeat > 0 {
        format!(" #{}", cell.repeat + 1)
    } else {
        String::new()
    }
}

pub use crate::results::store::slug;

/// A log file name per cell, from its id and repeat: readable, and unique within the run even
/// when two ids slug to the same name (`α` and `β` both become `_`).
pub fn log_names(cells: &[Cell]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    cells
        .iter()
        .map(|cell| {
            let base = format!(
                "{}{}",
                slug(&cell.id),
                repeat_suffix(cell).replace(" #", "-")
            );
            let mut name = base.clone();
            let mut n = 1;
            while !seen.insert(name.clone()) {
                n += 1;
                name = format!("{base}~{n}");
            }
            name
        })
        .collect()
}

/// Why an interrupted cell has no verdict.
fn interrupted_reason(ctx: &CellContext<'_>, how: &str) -> String {
    format!(
        "interrupted ({}) {how}",
        ctx.interrupt.signal().unwrap_or("signal")
    )
}

/// The record of a cell abandoned by a second signal: what is known before it ran.
pub fn abandoned(cell: &Cell, ctx: &CellContext<'_>) -> CellResult {
    let reason = interrupted_reason(
        ctx,
        "and abandoned at once by a second signal; its processes were killed and its partial \
         measurements discarded",
    );
    infra(new_result(cell, ctx), reason)
}

pub fn one_line(r: &CellResult) -> String {
    let verdict = format!("{:?}", r.verdict).to_uppercase();
    match r.total() {
        Some(t) if r.verdict != Verdict::Error => format!(
            "{verdict}  {:.0} ops/s  p99 {:.0}µs  errors {}",
            t.throughput,
            t.waited().p99_us,
            t.errors
        ),
        _ => format!("{verdict}: {}", r.verdict_reason),
    }
}

fn new_result(cell: &Cell, ctx: &CellContext<'_>) -> CellResult {
    let now = chrono::Utc::now();
    CellResult {
        schema: SCHEMA.to_string(),
        run_id: ctx.run_dir.id(),
        matrix: cell.matrix.clone(),
        cell_id: cell.id.clone(),
        repeat: cell.repeat,
        axes: cell.axes.as_map(),
        verdict: Verdict::Error,
        verdict_reason: String::new(),
        expected: cell.expected,
        infra_error: None,
        server: None,
        scenario_kind: cell.scenario.kind().name().to_string(),
        scenario: serde_json::to_value(&cell.scenario).expect("scenario config serializes"),
        started_at: now,
        finished_at: now,
        measured_seconds: 0.0,
        counts: Default::default(),
        ops: vec![],
        errors: vec![],
        timeline: vec![],
        server_log_tail: vec![],
        stack: None,
        target: None,
        app_settings: None,
        app_exceptions: vec![],
        http_status: Default::default(),
        harness_cpu_seconds: 0.0,
        check: None,
        gates: cell.gates.clone(),
        cachegate_version: env!("CARGO_PKG_VERSION").to_string(),
        host: ctx.host.clone(),
        clock_offset_ms: None,
        generators: None,
        source_run: None,
    }
}

/// Record that the cell could not run, and why.
fn infra(mut r: CellResult, message: String) -> CellResult {
    r.verdict = Verdict::Error;
    r.verdict_reason = message.clone();
    r.infra_error = Some(message);
    r.finished_at = chrono::Utc::now();
    r
}

pub async fn run_cell(
    cell: &Cell,
    binary: Result<ProvisionedServer, String>,
    stack: Option<Result<ProvisionedStack, String>>,
    ctx: &CellContext<'_>,
) -> CellResult {
    let mut result = new_result(cell, ctx);
    if let Err(e) = crate::fd_limit::ensure_room_for(cell.scenario.connections()) {
        return infra(result, e);
    }
    let binary = match binary {
        Ok(b) => b,
        Err(e) => return infra(result, e),
    };
    let stack = match stack.transpose() {
        Ok(s) => s,
        Err(e) => return infra(result, e),
    };
    if let Some(s) = &stack {
        result.stack = Some(StackInfo {
            name: s.name.clone(),
            python: s.python_version.clone(),
            summary: s.summary(),
            packages: s.packages.clone(),
        });
    }
    let spec = match with_secrets(cell, &binary).await {
        Ok(spec) => spec,
        Err(Refusal::Unsupported(reason)) => {
            result.verdict = Verdict::Unsupported;
            result.verdict_reason = reason;
            result.finished_at = chrono::Utc::now();
            return result;
        }
        Err(Refusal::Infra(e)) => return infra(result, e),
    };
    let mut starter = RuntimeStarter {
        cell,
        binary: &binary,
        run_id: ctx.run_dir.id(),
    };
    let mut deployment = match Deployment::start(cell.axes.topology, &spec, &mut starter).await {
        Ok(d) => d,
        Err(e) => return infra(result, e.to_string()),
    };
    let log_base = &ctx.log_base;
    let primary = &deployment.nodes[0].server;
    result.server = Some(ServerInfo {
        family: binary.family.name().to_string(),
        version: binary.version.clone(),
        source: binary.source.clone(),
        binary: binary.binary.display().to_string(),
        runtime: match cell.target.server {
            Some(_) => "external".to_string(),
            None => cell.axes.runtime.name().to_string(),
        },
        identity: primary.identity(),
        persistence: cell.spec.persistence.to_string(),
        config: {
            // The password stays with the server; the result says only that one was set.
            let mut c = cell.spec.settings.clone();
            if c.requirepass.is_some() {
                c.requirepass = Some(crate::results::redact::REDACTED.into());
            }
            for user in c.users.iter_mut().filter(|u| !u.password.is_empty()) {
                user.password = crate::results::redact::REDACTED.into();
            }
            c
        },
        start_ms: primary.last_start_ms(),
        log: Some(format!("{log_base}.log")),
        topology: None,
    });
    let addresses = deployment.addresses();

    let mut app = None;
    // The settings as the app got them (passwords included); the result keeps them redacted.
    let mut app_settings = None;
    let mut accounts = vec![];
    let mut project_session_engine = None;
    let app_url = if cell.scenario.needs_app() {
        match start_app(cell, &addresses, stack.as_ref(), &ctx.user_tag, &mut result).await {
            Ok(started) => {
                app = started.process;
                app_settings = started.settings;
                accounts = started.accounts;
                project_session_engine = started.session_engine;
                Some(started.url)
            }
            Err(e) => {
                let _ = deployment.remove().await;
                return infra(result, e);
            }
        }
    } else {
        None
    };
    let session_engine = project_session_engine.unwrap_or_else(|| {
        cell.app_settings
            .as_ref()
            .and_then(|s| s.get("SESSION_ENGINE"))
            .and_then(|v| v.as_str())
            .unwrap_or("django.contrib.sessions.backends.db")
            .to_string()
    });
    let cpu_before = cpu_seconds();
    let done = Arc::new(AtomicU64::new(0));
    let progress = CellProgress::start(&ctx.label, &cell.scenario, ctx.progress, done.clone());
    let topology = deployment.topology;
    let (primary, others) = deployment
        .nodes
        .split_first_mut()
        .expect("a deployment has a node");
    let mut env = CellEnv {
        server: primary.server.as_mut(),
        others,
        topology,
        app_url,
        target: &cell.target,
        session_engine,
        key_prefix: ctx.key_prefix.clone(),
        user_tag: ctx.user_tag.clone(),
        cancel: ctx.cancel.clone(),
        progress: done,
        log_base: ctx.run_dir.path.join(log_base),
        app_settings,
        app_db: app.as_ref().map(AppProcess::db_path),
        stacks: &cell.stacks,
        settings: &cell.settings,
        stack_name: cell.axes.stack.clone(),
        settings_name: cell.axes.settings.clone(),
        addresses: addresses.clone(),
        starter: &mut starter,
        accounts,
        venv: stack.as_ref(),
        stack: result
            .stack
            .as_ref()
            .map(|s| format!("{} ({})", s.name, s.summary)),
    };
    let output = cell.scenario.run(&mut env).await;
    progress.finish();
    if let Some(mut app) = app {
        let log_path = ctx.run_dir.path.join(format!("{log_base}.app.log"));
        app.stop(Some(&log_path)).await;
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        result.app_exceptions = exceptions::from_log(&log, |p| cell.target.step_of_path(p));
    }
    result.harness_cpu_seconds = cpu_seconds() - cpu_before;

    let (died, stop, removed) = stop_deployment(
        &mut deployment,
        &ctx.run_dir.path,
        log_base,
        (!output.passed, output.primary_stopped),
        &mut result,
    )
    .await;

    result.finished_at = chrono::Utc::now();
    result.measured_seconds = output.measured_seconds;
    result.counts = output.counts;
    result.ops = output.ops;
    result.errors = output.errors;
    result.timeline = output.timeline;
    result.http_status = output.http_status;
    result.check = output.check;
    if ctx.cancel.is_cancelled() {
        let reason = interrupted_reason(ctx, "before the cell finished");
        return infra(result, reason);
    }
    if let Some(e) = output.infra_error {
        return infra(result, e);
    }
    let (verdict, reason) = judge(cell, output.passed, output.reason, &result);
    result.verdict = verdict;
    result.verdict_reason = reason;
    if !died.is_empty() {
        result.verdict_reason.push_str(&format!(
            "; {} exited during the run",
            if topology.is_standalone() {
                "the server process".to_string()
            } else {
                format!("a node ({died})")
            }
        ));
    }
    if let Err(e) = stop {
        result
            .verdict_reason
            .push_str(&format!("; stopping the server: {e}"));
    }
    if let Err(e) = removed {
        result
            .verdict_reason
            .push_str(&format!("; removing the server: {e}"));
    }
    result
}

/// Why a cell's server is not started.
enum Refusal {
    /// The build cannot do what the cell asks (UNSUPPORTED).
    Unsupported(String),
    /// Something went wrong making what it needs (ERROR).
    Infra(String),
}

/// The cell's spec with its secrets: certificates on the `tls` transport (after probing that the
/// binary serves TLS at all) and the harness's ACL password when the matrix defines users.
async fn with_secrets(cell: &Cell, binary: &ProvisionedServer) -> Result<ServerSpec, Refusal> {
    let tls = !cell.axes.transport.is_plaintext();
    let users = &cell.spec.settings.users;
    if !tls && users.is_empty() {
        return Ok(cell.spec.clone());
    }
    if tls {
        if let Err(why) = crate::server::tls::supports_tls(binary).await {
            return Err(Refusal::Unsupported(
                crate::server::tls::unsupported_reason(binary, &why),
            ));
        }
    }
    let secrets =
        crate::server::acl::Secrets::for_cell(tls.then_some(&cell.spec.settings.tls), users)
            .map_err(Refusal::Infra)?;
    Ok(ServerSpec {
        secrets: Some(secrets),
        ..cell.spec.clone()
    })
}

/// Starts the cell's nodes on the runtime its `runtime` axis names.
struct RuntimeStarter<'a> {
    cell: &'a Cell,
    binary: &'a ProvisionedServer,
    run_id: String,
}

#[async_trait::async_trait]
impl NodeStarter for RuntimeStarter<'_> {
    async fn start(
        &mut self,
        spec: &ServerSpec,
        node: &str,
    ) -> crate::error::Result<Box<dyn RunningServer>> {
        let binary = self.binary;
        self.start_other(spec, binary, node).await
    }

    async fn start_other(
        &mut self,
        spec: &ServerSpec,
        binary: &ProvisionedServer,
        _node: &str,
    ) -> crate::error::Result<Box<dyn RunningServer>> {
        if binary.family == Family::NoServer {
            return Ok(Box::new(NoServer::new(spec)));
        }
        if let Some(addr) = &self.cell.target.server {
            let addr = addr.parse().map_err(|_| crate::error::Error::Server {
                server: spec.server.to_string(),
                message: format!("[target] server `{addr}` is not an address"),
            })?;
            return Ok(Box::new(ExternalServer::connect(spec, addr)?));
        }
        Ok(match self.cell.axes.runtime {
            RuntimeKind::Process => Box::new(ServerProcess::start(spec, binary).await?),
            RuntimeKind::Container => {
                let labels = ContainerLabels::new(&self.run_id, &self.cell.id);
                Box::new(ContainerServer::start(spec, binary, &self.cell.container, labels).await?)
            }
        })
    }
}

/// Stop every node gracefully, save each log in the run folder (the first node's as
/// `BASE.log`, the others' as `BASE.NODE.log`), record the topology, and remove everything.
/// Returns the nodes that had exited on their own, and the first stop and remove errors.
async fn stop_deployment(
    deployment: &mut Deployment,
    run_path: &std::path::Path,
    log_base: &str,
    (keep_tail, primary_stopped): (bool, bool),
    result: &mut CellResult,
) -> (String, crate::error::Result<()>, crate::error::Result<()>) {
    // One server: the result's server section already says everything.
    let mut nodes = if deployment.topology.is_standalone() {
        vec![Default::default(); deployment.nodes.len()]
    } else {
        deployment.describe().await
    };
    let mut died = Vec::new();
    let mut stop = Ok(());
    for (i, (node, info)) in deployment.nodes.iter_mut().zip(&mut nodes).enumerate() {
        // A primary the scenario shut down itself (a switch-over) did not die.
        let stopped_on_purpose = i == 0 && primary_stopped;
        if !stopped_on_purpose && !node.server.is_running().await {
            died.push(node.name.clone());
        }
        let stopped = node.server.stop(StopKind::Graceful).await;
        if stop.is_ok() {
            stop = stopped;
        }
        let log = if i == 0 {
            format!("{log_base}.log")
        } else {
            format!("{log_base}.{}.log", node.name)
        };
        let _ = node.server.save_log(&run_path.join(&log)).await;
        info.log = Some(log);
        if i == 0 && (!died.is_empty() || keep_tail) {
            result.server_log_tail = node.server.log_tail(20).await;
        }
    }
    if let Some(server) = result.server.as_mut() {
        if !deployment.topology.is_standalone() {
            server.topology = Some(TopologyInfo {
                topology: deployment.topology.to_string(),
                formed_ms: deployment.formed_ms,
                nodes,
            });
        }
    }
    let removed = deployment.remove().await;
    (died.join(", "), stop, removed)
}

/// The app the cell's HTTP scenario talks to, once started.
struct StartedApp {
    url: String,
    /// The app cachegate started (the caller stops it); `None` for an external one.
    process: Option<AppProcess>,
    /// The settings as the app got them (passwords included; the result keeps them redacted).
    settings: Option<serde_json::Value>,
    /// The accounts made up front for a form login.
    accounts: Vec<crate::target::protocol::Account>,
    /// A project's SESSION_ENGINE as it runs (its own settings', unless the matrix sets one).
    session_engine: Option<String>,
}

/// The app: the external one, or the bundled app or the team's project started on the cell's
/// stack with the cell's settings (with accounts made up front for a form login).
async fn start_app(
    cell: &Cell,
    addresses: &Addresses,
    stack: Option<&ProvisionedStack>,
    user_tag: &str,
    result: &mut CellResult,
) -> Result<StartedApp, String> {
    match (&cell.target.url, stack) {
        (Some(url), _) => {
            result.target = Some(url.clone());
            Ok(StartedApp {
                url: url.trim_end_matches('/').to_string(),
                process: None,
                settings: None,
                accounts: vec![],
                session_engine: None,
            })
        }
        (None, Some(stack)) => {
            let table = cell
                .app_settings
                .as_ref()
                .ok_or("the app needs a settings axis")?;
            let settings = django_settings(table, addresses)?;
            result.app_settings = Some(crate::results::redact::settings(&settings));
            let code = AppCode::of(&cell.target)?;
            result.target = Some(code.describe());
            let app = AppProcess::start(stack, &code, &cell.target, &settings)
                .await
                .map_err(|e| e.to_string())?;
            let mut accounts = vec![];
            let mut session_engine = None;
            if let AppCode::Project { project, hook } = &code {
                session_engine = Some(crate::target::project::session_engine(
                    stack,
                    project,
                    hook,
                    &settings,
                    &app.db_path(),
                )?);
            }
            if let (AppCode::Project { project, hook }, LoginKind::Form) =
                (&code, cell.target.login)
            {
                let count = cell.target.accounts.map_or(10, |n| n.get());
                let (made, model) = crate::target::project::create_accounts(
                    stack,
                    project,
                    hook,
                    &settings,
                    &app.db_path(),
                    &format!("{user_tag}f"),
                    count,
                )?;
                result.target = Some(format!(
                    "{} ({count} accounts made through {model})",
                    code.describe()
                ));
                accounts = made;
            }
            Ok(StartedApp {
                url: app.base_url(),
                process: Some(app),
                settings: Some(settings),
                accounts,
                session_engine,
            })
        }
        (None, None) => Err(format!(
            "{} needs a stack (axes.stack) or a [target] url",
            cell.scenario.kind().name()
        )),
    }
}

/// The verdict: the scenario's own pass/fail against the cell's expectation. An expected failure
/// with a signature only counts as XFAIL if it failed that way.
fn judge(cell: &Cell, passed: bool, reason: String, result: &CellResult) -> (Verdict, String) {
    let expected_pass = cell.expected == ExpectedOutcome::Pass;
    let mut reason = match result.app_exceptions.first() {
        Some(e) if !passed => format!(
            "{reason}; app exception: {} (x{}, first at {})",
            e.signature, e.count, e.first_step
        ),
        _ => reason,
    };
    if expected_pass {
        return (Verdict::from_outcome(true, passed), reason);
    }
    if let Some(why) = &cell.expect_reason {
        reason = format!("{reason} (expected to fail: {why})");
    }
    match (&cell.expect_signature, passed) {
        (Some(pattern), false) => {
            let seen = result
                .app_exceptions
                .iter()
                .any(|e| e.signature.contains(pattern.as_str()))
                || result.errors.iter().any(|e| {
                    e.kind.contains(pattern.as_str()) || e.example.contains(pattern.as_str())
                });
            if seen {
                (Verdict::Xfail, reason)
            } else {
                (
                    Verdict::Fail,
                    format!("failed, but not with the expected signature `{pattern}`: {reason}"),
                )
            }
        }
        _ => (Verdict::from_outcome(false, passed), reason),
    }
}

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass; RUSAGE_SELF covers all threads of the process.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}
