//! `login-flow`: registration and login over HTTP, driven by goose. Each goose user runs whole
//! flows: fetch a CSRF token, register a unique account, log in, read "who am I" K times, log
//! out, and check it is logged out. Every step is verified, not just its status: after login the
//! read must show that user; after logout it must not.
//!
//! Latencies go into the harness's own HDR histograms (goose keeps whole milliseconds), so steps
//! get the same exact percentiles as `cache-ops`; goose provides the users, their cookie jars
//! and the scheduling.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::prelude::*;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::ScenarioOutput;
use crate::config::scenario_file::{at_least_one, max_error_rate, ScenarioParams};
use crate::config::HumanDuration;
use crate::results::failure::Failure;
use crate::results::recorder::{Recorder, Timeline};
use crate::results::OpCounts;
use crate::target::TargetSection;

pub use crate::target::protocol::STEP_NAMES;
use crate::target::protocol::{reply_headers, Account, Protocol, Reply, Step};

/// How many flows a run does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowLength {
    /// Flows per user.
    Iterations(u32),
    Duration(HumanDuration),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoginFlowConfig {
    /// Concurrent goose users, each with its own cookie jar.
    pub users: u32,
    pub length: FlowLength,
    /// Authenticated reads per flow.
    pub reads: u32,
    /// Users started per second.
    pub hatch_rate: f64,
    pub request_timeout: HumanDuration,
    pub max_error_rate: f64,
}

impl LoginFlowConfig {
    pub fn resolve(p: &ScenarioParams) -> Result<Self, String> {
        let length = match (p.duration, p.iterations) {
            (Some(_), Some(_)) => {
                return Err("set either `duration` or `iterations`, not both".into())
            }
            (Some(d), None) => FlowLength::Duration(d),
            (None, Some(0)) => return Err("field `iterations` must be at least 1".into()),
            (None, Some(n)) => FlowLength::Iterations(n),
            (None, None) => FlowLength::Iterations(3),
        };
        let users = at_least_one(p.users, "users", 10)?;
        let hatch_rate = p.hatch_rate.unwrap_or(users as f64);
        if !(hatch_rate > 0.0 && hatch_rate.is_finite()) {
            return Err("field `hatch_rate` must be above 0".into());
        }
        Ok(LoginFlowConfig {
            users,
            length,
            reads: p.reads.unwrap_or(5),
            hatch_rate,
            request_timeout: p
                .op_timeout
                .unwrap_or(HumanDuration(Duration::from_secs(60))),
            max_error_rate: max_error_rate(p.max_error_rate)?,
        })
    }
}

/// One request of the flow, for scenarios that look at when things failed (outage).
#[derive(Debug, Clone)]
pub struct Event {
    /// When it completed, since the flow started.
    pub at: Duration,
    pub step: &'static str,
    pub ok: bool,
    /// HTTP status, if the app answered.
    pub status: Option<u16>,
    pub latency: Duration,
}

/// Shared by every goose user of one run.
struct Flow {
    /// Every request, when asked for.
    events: Option<Mutex<Vec<Event>>>,
    protocol: Protocol,
    reads: u32,
    /// Under the `api` protocol usernames are `TAG + counter`: unique per run, so flows never
    /// collide. Under `form`, flows sign in with the accounts created up front, in turn.
    tag: String,
    accounts: Vec<Account>,
    counter: AtomicU64,
    start: Instant,
    rec: Mutex<Recorder>,
    timeline: Mutex<Timeline>,
    status: Mutex<BTreeMap<String, u64>>,
    sent: AtomicU64,
    flows_done: AtomicU64,
    last_completion: Mutex<Instant>,
}

impl Flow {
    /// Do one request of the flow, verify it, record it; the CSRF token it handed out (or
    /// `token` again) if it passed. A step the protocol does not have passes as is.
    async fn step(
        &self,
        user: &mut GooseUser,
        step: Step,
        who: &Account,
        token: Option<String>,
    ) -> Option<Option<String>> {
        let Some(planned) = self.protocol.request(step, who, token.as_deref()) else {
            return Some(token);
        };
        let method = if planned.post {
            GooseMethod::Post
        } else {
            GooseMethod::Get
        };
        let builder = match user.get_request_builder(&method, &planned.path) {
            Ok(b) => self.protocol.body(b, &planned),
            Err(e) => {
                self.fail(step, Failure::BadRequest, format!("{e}"), None);
                return None;
            }
        };
        let request = GooseRequest::builder()
            .path(planned.path.as_str())
            .method(method)
            .name(step.name())
            .set_request_builder(builder)
            .build();
        self.sent.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let reply = match user.request(request).await {
            Ok(r) => r.response,
            Err(e) => {
                self.fail(step, Failure::RequestError, e.to_string(), Some(started));
                self.event(step, false, None, started);
                return None;
            }
        };
        let (status, location, cookies, body) = match reply {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let (location, cookies) = reply_headers(resp.headers());
                (
                    status,
                    location,
                    cookies,
                    resp.text().await.unwrap_or_default(),
                )
            }
            Err(e) => {
                let kind = if e.is_timeout() {
                    Failure::Timeout
                } else if e.is_connect() {
                    Failure::ConnectionRefused
                } else {
                    Failure::ConnectionError
                };
                self.fail(step, kind, e.to_string(), Some(started));
                self.event(step, false, None, started);
                return None;
            }
        };
        let done = Instant::now();
        *self
            .status
            .lock()
            .expect("status lock")
            .entry(status.to_string())
            .or_default() += 1;
        let reply = Reply {
            status,
            location: location.as_deref(),
            cookies: &cookies,
            body: &body,
        };
        let verdict = self.protocol.judge(step, who, &reply);
        self.event(step, verdict.is_ok(), Some(status), started);
        let mut rec = self.rec.lock().expect("recorder lock");
        rec.tick(&self.timeline, done.duration_since(self.start).as_secs());
        *self.last_completion.lock().expect("lock") = done;
        match verdict {
            Ok(()) => {
                rec.ok(
                    step as usize,
                    done.duration_since(started).as_nanos() as u64,
                );
                Some(self.protocol.token(&reply).or(token))
            }
            Err(kind) => {
                let snippet: String = body.chars().take(200).collect();
                rec.failed(
                    step as usize,
                    done.duration_since(started).as_nanos() as u64,
                    Failure::during(step.name(), kind),
                    || format!("HTTP {status}: {snippet}"),
                );
                None
            }
        }
    }

    fn event(&self, step: Step, ok: bool, status: Option<u16>, started: Instant) {
        if let Some(events) = &self.events {
            let now = Instant::now();
            events.lock().expect("events lock").push(Event {
                at: now.duration_since(self.start),
                step: step.name(),
                ok,
                status,
                latency: now.duration_since(started),
            });
        }
    }

    /// A failed step; `started` when a request was sent (its wait is recorded).
    fn fail(&self, step: Step, kind: Failure, message: String, started: Option<Instant>) {
        let mut rec = self.rec.lock().expect("recorder lock");
        rec.tick(&self.timeline, self.start.elapsed().as_secs());
        let kind = Failure::during(step.name(), kind);
        match started {
            Some(t) => rec.failed(step as usize, t.elapsed().as_nanos() as u64, kind, || {
                message
            }),
            None => rec.error(step as usize, kind, || message),
        }
    }
}

/// One whole flow. A failed step ends the flow (it is recorded; later steps cannot be meaningful).
async fn one_flow(user: &mut GooseUser, flow: &Flow) -> TransactionResult {
    let n = flow.counter.fetch_add(1, Ordering::Relaxed);
    let who = match flow.accounts.len() {
        0 => Account {
            login: format!("{}{n}", flow.tag),
            password: format!("Cg-{n}-{}-pw", flow.tag),
        },
        len => flow.accounts[(n % len as u64) as usize].clone(),
    };
    let mut token = None;
    for step in [Step::Csrf, Step::Register, Step::Login] {
        let Some(t) = flow.step(user, step, &who, token).await else {
            return Ok(());
        };
        token = t;
    }
    for _ in 0..flow.reads {
        let Some(t) = flow.step(user, Step::Me, &who, token).await else {
            return Ok(());
        };
        token = t;
    }
    let Some(token) = flow.step(user, Step::Logout, &who, token).await else {
        return Ok(());
    };
    if flow.step(user, Step::MeAnon, &who, token).await.is_some() {
        flow.flows_done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Who the flow signs in as: the target (its protocol), the cell's tag for accounts it
/// registers, and the accounts created up front (`login = "form"`).
pub struct Users<'a> {
    pub target: &'a TargetSection,
    pub tag: &'a str,
    pub accounts: &'a [Account],
}

/// Run the flow against `base_url` (e.g. http://127.0.0.1:PORT) until done or cancelled.
pub async fn run(
    cfg: &LoginFlowConfig,
    base_url: &str,
    who: &Users<'_>,
    cancel: CancellationToken,
    progress: Arc<AtomicU64>,
) -> ScenarioOutput {
    run_with_events(cfg, base_url, who, cancel, progress, false)
        .await
        .0
}

/// `run`, also returning every request when `keep_events` is set.
pub async fn run_with_events(
    cfg: &LoginFlowConfig,
    base_url: &str,
    who: &Users<'_>,
    cancel: CancellationToken,
    progress: Arc<AtomicU64>,
    keep_events: bool,
) -> (ScenarioOutput, Vec<Event>) {
    let start = Instant::now();
    let flow = Arc::new(Flow {
        events: keep_events.then(|| Mutex::new(Vec::new())),
        protocol: Protocol::new(who.target),
        reads: cfg.reads,
        tag: who.tag.to_string(),
        accounts: who.accounts.to_vec(),
        counter: AtomicU64::new(0),
        start,
        rec: Mutex::new(Recorder::new(STEP_NAMES)),
        timeline: Mutex::new(Timeline::new(0.0)),
        status: Mutex::new(BTreeMap::new()),
        sent: AtomicU64::new(0),
        flows_done: AtomicU64::new(0),
        last_completion: Mutex::new(start),
    });
    let mut config = GooseConfiguration::default();
    config.host = Some(base_url.to_string());
    config.users = Some(cfg.users as usize);
    config.increase_rate = Some(format!("{}", cfg.hatch_rate));
    match cfg.length {
        FlowLength::Iterations(n) => config.iterations = Some(n as usize),
        FlowLength::Duration(d) => config.run_time = Some(format!("{}s", d.0.as_secs().max(1))),
    }
    config.timeout = Some(format!("{}", cfg.request_timeout.0.as_secs().max(1)));
    config.quiet = 1;
    config.no_print_metrics = true;
    config.no_error_summary = true;
    // cachegate keeps its own histograms; goose's metrics would be a second copy of the work.
    config.no_metrics = true;
    // The app does not compress; negotiating gzip only costs client CPU.
    config.no_gzip = true;
    // goose's telnet controller listens on a fixed port (5116): nothing here drives it, and a
    // second run in one process found the port still taken. (goose 0.19's websocket controller
    // is off unless asked for; turning it off again only logs a warning.)
    config.no_telnet = true;

    let in_flow = flow.clone();
    let counter = progress.clone();
    let transaction: TransactionFunction = Arc::new(move |user| {
        let flow = in_flow.clone();
        let counter = counter.clone();
        Box::pin(async move {
            let before = flow.sent.load(Ordering::Relaxed);
            let r = one_flow(user, &flow).await;
            counter.fetch_add(
                flow.sent.load(Ordering::Relaxed).saturating_sub(before),
                Ordering::Relaxed,
            );
            r
        })
    });
    let mut scenario = Scenario::new("login-flow");
    if !flow.protocol.registers() {
        // Form logins judge redirects instead of following them: each user gets that client.
        let protocol = flow.protocol.clone();
        let timeout = cfg.request_timeout.0;
        let on_start: TransactionFunction = Arc::new(move |user| {
            let builder = protocol.client_builder().timeout(timeout);
            Box::pin(async move { user.set_client_builder(builder).await.map_err(Box::new) })
        });
        scenario = scenario
            .register_transaction(Transaction::new(on_start).set_name("client").set_on_start());
    }
    let scenario = scenario.register_transaction(Transaction::new(transaction).set_name("flow"));
    // goose stops on its process-wide killswitch; cancellation (Ctrl-C, a caller) pulls it.
    let stopper = tokio::spawn(async move {
        cancel.cancelled().await;
        goose::trigger_killswitch("cancelled by cachegate");
    });
    // goose 0.19 prints "N users launched." to stdout once every user has started (in iterations
    // mode, with no setting to turn it off): cachegate's output is its own. Nothing else writes
    // to stdout while a cell runs (cells run one at a time; progress goes to stderr). `None` when
    // stdout is already silenced (another flow in this process).
    let silenced = gag::Gag::stdout().ok();
    let outcome = match GooseAttack::initialize_with_config(config) {
        Ok(attack) => attack
            .register_scenario(scenario)
            .execute()
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    drop(silenced);
    stopper.abort();
    let output = summarize(&flow, cfg, outcome.err().map(|e| e.to_string()));
    let events = flow
        .events
        .as_ref()
        .map(|e| std::mem::take(&mut *e.lock().expect("events lock")))
        .unwrap_or_default();
    (output, events)
}

fn summarize(flow: &Flow, cfg: &LoginFlowConfig, goose_error: Option<String>) -> ScenarioOutput {
    let mut rec = flow.rec.lock().expect("recorder lock");
    rec.flush(&flow.timeline);
    let window = flow
        .last_completion
        .lock()
        .expect("lock")
        .duration_since(flow.start)
        .as_secs_f64();
    let (ops, errors) = rec.summarize(window);
    let counts = OpCounts {
        sent: flow.sent.load(Ordering::Relaxed),
        ok: rec.ok_total(),
        errors: rec.error_total(),
        warmup: 0,
    };
    let measured = counts.ok + counts.errors;
    let flows = flow.counter.load(Ordering::Relaxed);
    let done = flow.flows_done.load(Ordering::Relaxed);
    let error_rate = if measured > 0 {
        counts.errors as f64 / measured as f64
    } else {
        1.0
    };
    let (passed, reason) = if let Some(e) = goose_error {
        (false, format!("goose failed: {e}"))
    } else if measured == 0 {
        (false, "no request completed".to_string())
    } else if error_rate > cfg.max_error_rate {
        let top = errors
            .first()
            .map(|e| format!(" (most: {} x{})", e.kind, e.count))
            .unwrap_or_default();
        (
            false,
            format!(
                "{done} of {flows} flows completed; {} of {measured} requests failed{top}",
                counts.errors
            ),
        )
    } else {
        (
            true,
            format!(
                "{done} of {flows} flows completed, {measured} requests, {} errors",
                counts.errors
            ),
        )
    };
    let timeline = std::mem::replace(
        &mut *flow.timeline.lock().expect("timeline lock"),
        Timeline::new(0.0),
    );
    ScenarioOutput {
        counts,
        ops,
        errors,
        timeline: timeline.finish(),
        measured_seconds: window,
        passed,
        reason,
        http_status: flow.status.lock().expect("status lock").clone(),
        ..Default::default()
    }
}

impl LoginFlowConfig {
    /// Seconds the flow is planned to take (0: a number of iterations).
    pub fn planned_seconds(&self) -> u64 {
        match self.length {
            FlowLength::Duration(d) => d.0.as_secs(),
            FlowLength::Iterations(_) => 0,
        }
    }
}

impl super::Scenario for LoginFlowConfig {
    const KIND: &'static str = "login-flow";
    const FIELDS: &'static [&'static str] =
        &["duration", "users", "iterations", "reads", "hatch_rate"];
    const NEEDS_APP: bool = true;
    const OPS: Option<&'static [&'static str]> = Some(STEP_NAMES);

    fn from_params(p: &ScenarioParams) -> Result<Self, String> {
        LoginFlowConfig::resolve(p)
    }
    fn planned_seconds(&self) -> u64 {
        LoginFlowConfig::planned_seconds(self)
    }
    async fn run(&self, env: &mut super::CellEnv<'_>) -> ScenarioOutput {
        let base = env.app_url.clone().expect("HTTP scenarios get an app");
        run(
            self,
            &base,
            &env.users(),
            env.cancel.clone(),
            env.progress.clone(),
        )
        .await
    }
}
