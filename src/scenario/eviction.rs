//! `eviction`: sessions and cache share one server with `maxmemory` and a policy. Users log in,
//! then cache traffic (large SETs without TTL) fills memory while new logins keep being tried
//! (during the fill and right after it); then every earlier session is checked. Django's cache session backend stores sessions
//! with a TTL, which decides what each policy may evict; other engines keep sessions elsewhere
//! (src/scenario/promise.rs). On memcached the limit is `-m` and it evicts by LRU per slab class
//! (or refuses writes with `-M`).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;

use super::browser::{Browser, SessionState};
use super::cache_ops::{self, CacheOpsConfig};
use super::cluster::Target;
use super::promise::{self, Promise};
use super::{CellEnv, ScenarioOutput};
use crate::config::scenario_file::{OpMix, ScenarioParams, ValueSize};
use crate::config::{HumanDuration, ScenarioKind};
use crate::results::checks::Check;
use crate::results::checks::EvictionReport;
use crate::server::{control, Protocol};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvictionConfig {
    /// Sessions created before the fill.
    pub users: u32,
    /// The cache traffic that fills memory (SET only).
    pub fill: CacheOpsConfig,
    pub request_timeout: HumanDuration,
}

impl EvictionConfig {
    pub fn resolve(p: &ScenarioParams) -> Result<Self, String> {
        let mut fill = p.clone();
        fill.kind = Some(ScenarioKind::new(<CacheOpsConfig as super::Scenario>::KIND));
        fill.users = None;
        fill.mix = Some(OpMix {
            set: 1,
            ..Default::default()
        });
        fill.warmup = Some(HumanDuration(Duration::ZERO));
        fill.ttl = None;
        fill.max_error_rate = Some(1.0);
        fill.connections = Some(p.connections.unwrap_or(8));
        fill.duration = Some(p.duration.unwrap_or(HumanDuration(Duration::from_secs(5))));
        fill.keyspace = Some(p.keyspace.unwrap_or(1_000_000));
        fill.value_size = Some(p.value_size.unwrap_or(ValueSize::Fixed(4096)));
        fill.op_timeout = Some(HumanDuration(Duration::from_secs(1)));
        Ok(EvictionConfig {
            users: p.users.unwrap_or(20),
            fill: CacheOpsConfig::resolve(&fill)?,
            request_timeout: p
                .op_timeout
                .unwrap_or(HumanDuration(Duration::from_secs(30))),
        })
    }
}

pub async fn run(cfg: &EvictionConfig, env: &mut CellEnv<'_>) -> ScenarioOutput {
    let base = env.app_url.clone().expect("eviction runs against an app");
    let settings = env.server.spec().settings.clone();
    let policy = match env.server.endpoint().protocol {
        Protocol::Memcache => promise::memcached_policy(&settings.extra).to_string(),
        Protocol::Resp => settings
            .maxmemory_policy
            .clone()
            .unwrap_or_else(|| "noeviction".into()),
    };
    let tag = env.user_tag.clone();
    // Under a form login, "new" users sign in with the accounts made up front, in turn.
    let new_user =
        |i: u64, name: String| env.browser(&base, i as usize, name, cfg.request_timeout.0);

    let mut browsers: Vec<Browser> = (0..cfg.users)
        .map(|i| new_user(i as u64, format!("{tag}e{i}")))
        .collect();
    let outcomes = join_all(browsers.iter_mut().map(|b| b.sign_up_and_log_in())).await;
    let sessions: Vec<Browser> = browsers
        .into_iter()
        .zip(outcomes)
        .filter(|(_, o)| o.is_ok())
        .map(|(b, _)| b)
        .collect();

    // Fill memory, and keep trying new logins while it happens.
    let fill_done = tokio_util::sync::CancellationToken::new();
    let fill = {
        let done = fill_done.clone();
        let endpoint = env.server.endpoint();
        let prefix = format!("{}fill:", env.key_prefix);
        let cancel = env.cancel.clone();
        let progress: Arc<AtomicU64> = env.progress.clone();
        let fill_cfg = cfg.fill.clone();
        async move {
            let out = cache_ops::run(
                &fill_cfg,
                Target::Single(endpoint.clone()),
                &prefix,
                cancel,
                progress,
            )
            .await;
            done.cancel();
            out
        }
    };
    let prober = async {
        let mut during = NewUsers::default();
        while !fill_done.is_cancelled() {
            during
                .try_one(new_user(during.tried, format!("{tag}p{}", during.tried)))
                .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        during
    };
    let started = Instant::now();
    let (fill_out, during) = tokio::join!(fill, prober);
    // And a few once the fill is over: its keys stay (no TTL), but the fill clients' buffers,
    // which count toward maxmemory while they write, are gone.
    let mut after = NewUsers::default();
    for n in 0..5 {
        after
            .try_one(new_user(n as u64, format!("{tag}after{n}")))
            .await;
    }
    let (tried, refused) = (during.tried, during.refused());
    let (after_tried, after_refused) = (after.tried, after.refused());

    let (mut kept, mut lost, mut unknown) = (0, 0, 0);
    for b in &sessions {
        match b.check().await {
            SessionState::Valid => kept += 1,
            SessionState::Lost(_) => lost += 1,
            SessionState::Error(_) => unknown += 1,
        }
    }
    let evicted_keys = evicted_keys(env).await;
    let expected = promise::expect_sessions_under_eviction(&env.session_engine, &policy);
    let pressure = evicted_keys > 0 || fill_out.counts.errors > 0;
    let matches = unknown == 0
        && !sessions.is_empty()
        && match expected.promise {
            Promise::Keep => lost == 0,
            Promise::Lose => lost > 0 || !pressure,
            Promise::Either => true,
        };
    let report = EvictionReport {
        policy: policy.clone(),
        maxmemory: settings
            .maxmemory
            .clone()
            .unwrap_or_else(|| "unlimited".into()),
        sessions_before: sessions.len() as u64,
        sessions_kept: kept,
        sessions_lost: lost,
        sessions_unknown: unknown,
        logins_tried: tried,
        logins_refused: refused,
        failed_at: during.failed_at,
        logins_after_tried: after_tried,
        logins_after_refused: after_refused,
        failed_at_after: after.failed_at,
        fill_ok: fill_out.counts.ok,
        fill_errors: fill_out.counts.errors,
        evicted_keys,
        expected: expected.clone(),
        matches,
    };
    let reason = format!(
        "{policy}: {kept} of {} sessions kept; new users failed during the fill at {} ({} after it); {evicted_keys} keys evicted; expected {:?}: {}",
        sessions.len(),
        report.failed_during(),
        report.failed_after(),
        expected.promise,
        expected.because
    );
    ScenarioOutput {
        measured_seconds: started.elapsed().as_secs_f64(),
        passed: matches,
        reason,
        check: Some(Check::Eviction(report)),
        ..fill_out
    }
}

/// New users tried beside the fill: how many, and the step each failed one failed at.
#[derive(Default)]
struct NewUsers {
    tried: u64,
    failed_at: BTreeMap<String, u64>,
}

impl NewUsers {
    async fn try_one(&mut self, mut user: Browser) {
        self.tried += 1;
        if let Err(e) = user.sign_up_and_log_in().await {
            *self.failed_at.entry(e.step.to_string()).or_default() += 1;
        }
    }

    /// Users refused at the login step itself (not at the read after it).
    fn refused(&self) -> u64 {
        self.failed_at.get("login").copied().unwrap_or(0)
    }
}

/// `evicted_keys` from INFO stats, memcached's `evictions` from `stats` (0 if it cannot be read).
async fn evicted_keys(env: &CellEnv<'_>) -> u64 {
    let endpoint = env.server.endpoint();
    if endpoint.protocol == Protocol::Memcache {
        let stats = tokio::task::spawn_blocking(move || control::memcached_stats(endpoint.addr))
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        return stats
            .get("evictions")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
    }
    let info = crate::server::deployment::info(&endpoint, "stats").await;
    crate::server::deployment::info_field(&info, "evicted_keys")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl super::Scenario for EvictionConfig {
    const KIND: &'static str = "eviction";
    const FIELDS: &'static [&'static str] =
        &["connections", "keyspace", "value_size", "duration", "users"];
    const NEEDS_APP: bool = true;
    const OPS: Option<&'static [&'static str]> = None;
    const CHECK_METRICS: &'static [&'static str] = &["lost", "sessions_lost", "logins_refused"];

    fn from_params(p: &ScenarioParams) -> Result<Self, String> {
        EvictionConfig::resolve(p)
    }
    fn planned_seconds(&self) -> u64 {
        match self.fill.length {
            cache_ops::RunLength::Duration(d) => d.0.as_secs(),
            cache_ops::RunLength::Ops(_) => 0,
        }
    }
    fn connections(&self) -> u64 {
        self.fill.connections as u64
    }
    async fn run(&self, env: &mut CellEnv<'_>) -> ScenarioOutput {
        run(self, env).await
    }
}
