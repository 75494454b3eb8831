//! What a persistence mode, a restart, a maxmemory policy and a Django session engine promise
//! about data written before a restart or under memory pressure, each from its documentation:
//!
//! Persistence (redis.io "Redis persistence"; the same for Valkey, valkey.io "Persistence"):
//! - no persistence (`save ""`, `appendonly no`): the dataset lives in memory only; any restart
//!   starts empty.
//! - RDB: a snapshot is written when a save point (`save SECONDS CHANGES`) fires, and on a normal
//!   shutdown (SIGTERM / SHUTDOWN) when save points are configured. `SHUTDOWN NOSAVE` skips that
//!   snapshot; SIGKILL gives no chance to write one. Writes after the last snapshot are lost then.
//! - AOF: every write command is appended to the file before the client gets its reply; the
//!   `appendfsync` policy (always / everysec / no) only decides when the OS is told to flush its
//!   page cache to disk. A killed *process* therefore loses nothing under any policy; only an OS
//!   crash or power loss tells the policies apart, which no process-level test here can do.
//!
//! Which file a (re)started server loads (redis.conf, `appendonly`: "If the AOF is enabled on
//! startup Redis will load the AOF ... changing this value in a config file of an existing
//! database and restarting the server can lead to data loss"; redis/redis#12484):
//! - `appendonly yes`: the AOF only, never dump.rdb; with no AOF yet it starts empty.
//! - `appendonly no`: dump.rdb if there is one, whatever the new save points are.
//!
//! Session engines (docs.djangoproject.com "How to use sessions"): `cache` keeps sessions only in
//! the cache, stored with a timeout (so with a TTL); `cached_db` is a write-through cache whose
//! reads fall back to the database; `db`, `file` and `signed_cookies` never touch the cache.

use crate::server::{Family, Fsync, Persistence, ServerRef, StopKind};

// The data types live where they are read and recorded; their meaning is written here.
pub use crate::config::scenario_file::RestartKind;
pub use crate::results::checks::{Expectation, Promise};

impl RestartKind {
    pub fn stop_kind(self) -> StopKind {
        match self {
            RestartKind::Graceful => StopKind::Graceful,
            RestartKind::Nosave => StopKind::NoSave,
            RestartKind::Save => StopKind::Save,
            RestartKind::Kill => StopKind::Kill,
        }
    }
}

const FSYNC_NOTE: &str =
    "appendfsync always, everysec and no all write() each command before replying, so a \
    killed process loses nothing under any of them; only an OS crash or power loss separates them, \
    which this test does not cause";

fn expectation(promise: Promise, because: &str) -> Expectation {
    Expectation {
        promise,
        because: because.to_string(),
        not_separable: None,
    }
}

/// What `persistence` promises for data written `delay_secs` before the server goes down `how`,
/// restarted with `restart_with` (None: the same config).
pub fn expect(
    persistence: &Persistence,
    how: RestartKind,
    delay_secs: f64,
    restart_with: Option<&Persistence>,
) -> Expectation {
    let Some(after) = restart_with.filter(|a| *a != persistence) else {
        return written(persistence, how, delay_secs);
    };
    let change = format!("restarted as {after} (was {persistence})");
    match (persistence.aof, after.aof) {
        // The AOF the server wrote is the file it loads.
        (Some(_), Some(_)) => {
            let mut x = written(persistence, how, delay_secs);
            x.because = format!("{change}: the AOF is loaded; {}", x.because);
            x
        }
        (None, Some(_)) => expectation(
            Promise::Lose,
            &format!("{change}: with appendonly turned on the server loads only the AOF, which does not exist yet, and ignores dump.rdb (redis.conf `appendonly`)"),
        ),
        // AOF off: only dump.rdb is loaded, so what counts is whether the old config wrote one.
        (_, None) => {
            let rdb_only = Persistence {
                aof: None,
                ..persistence.clone()
            };
            if rdb_only.save_points.is_empty() && how != RestartKind::Save {
                let aof = if persistence.aof.is_some() {
                    "with appendonly off the AOF is not read, and "
                } else {
                    ""
                };
                return expectation(
                    Promise::Lose,
                    &format!("{change}: {aof}no RDB snapshot was written (no save points)"),
                );
            }
            let mut x = written(&rdb_only, how, delay_secs);
            x.because = format!("{change}: only dump.rdb is loaded; {}", x.because);
            x
        }
    }
}

/// What `persistence` promises when the server comes back with the same config.
fn written(persistence: &Persistence, how: RestartKind, delay_secs: f64) -> Expectation {
    let e = expectation;
    if let Some(fsync) = persistence.aof {
        let mut x = e(
            Promise::Keep,
            "AOF appends every write before replying and is replayed at start",
        );
        if how == RestartKind::Kill && fsync != Fsync::Always {
            // Measured here: valkey 9.1 with everysec lost 46 of 39818 acknowledged writes to a
            // SIGKILL, so "written before the reply" is not a promise of every version.
            x.promise = Promise::Either;
            x.because = "appendfsync everysec/no promise nothing for the last moment's writes; \
                most versions write them before replying, but valkey 9.1 was seen losing a few to SIGKILL"
                .into();
            x.not_separable = Some(FSYNC_NOTE.to_string());
        }
        if how == RestartKind::Kill && fsync == Fsync::Always {
            x.because =
                "appendfsync always: each write is in the AOF (and fsynced) before the reply"
                    .into();
        }
        return x;
    }
    if how == RestartKind::Save {
        // redis.io SHUTDOWN: "SAVE will force a DB saving operation even if no save points are
        // configured".
        return e(
            Promise::Keep,
            "SHUTDOWN SAVE writes an RDB snapshot even when no save points are configured",
        );
    }
    if persistence.save_points.is_empty() {
        return e(
            Promise::Lose,
            "no RDB save points and no AOF: nothing is written to disk",
        );
    }
    match how {
        RestartKind::Save => unreachable!("handled above"),
        RestartKind::Graceful => e(
            Promise::Keep,
            "a normal shutdown writes an RDB snapshot when save points are set",
        ),
        RestartKind::Nosave => e(Promise::Lose, "SHUTDOWN NOSAVE skips the final snapshot"),
        RestartKind::Kill => {
            // A save point fires once its interval has passed since the last save and enough keys
            // changed; with a margin for the server's 100 ms cron and the fork.
            let fires = persistence
                .save_points
                .iter()
                .any(|p| (p.seconds as f64) + 1.5 <= delay_secs);
            if fires {
                e(Promise::Keep, "a save point's interval passed between the writes and the kill, so a snapshot holds them")
            } else if delay_secs < 0.5 {
                e(
                    Promise::Lose,
                    "SIGKILL right after the writes: no snapshot can hold them",
                )
            } else {
                e(
                    Promise::Either,
                    "a save point may or may not have fired between the writes and the kill",
                )
            }
        }
    }
}

/// Where a Django session engine keeps sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStore {
    /// `cache`: only in the cache, with a timeout.
    Cache,
    /// `cached_db`: write-through to the database; reads fall back to it.
    CacheAndDatabase,
    /// `db`, `file`, `signed_cookies`: never in the cache.
    Elsewhere,
    /// An engine this harness does not know.
    Unknown,
}

impl SessionStore {
    pub fn of(session_engine: &str) -> SessionStore {
        let module = session_engine.rsplit('.').next().unwrap_or_default();
        match module {
            "cache" => SessionStore::Cache,
            "cached_db" => SessionStore::CacheAndDatabase,
            "db" | "file" | "signed_cookies" => SessionStore::Elsewhere,
            _ => SessionStore::Unknown,
        }
    }

    /// The promise when the engine, not the cache, decides; None for the cache engine.
    fn decides(self, session_engine: &str) -> Option<Expectation> {
        match self {
            SessionStore::Cache => None,
            SessionStore::CacheAndDatabase => Some(expectation(
                Promise::Keep,
                &format!("{session_engine} writes every session to the database too and reads it from there when the cache has lost it"),
            )),
            SessionStore::Elsewhere => Some(expectation(
                Promise::Keep,
                &format!("{session_engine} {}", elsewhere(session_engine)),
            )),
            SessionStore::Unknown => Some(expectation(
                Promise::Either,
                &format!("{session_engine} is not one of Django's session engines: where it keeps sessions is not known"),
            )),
        }
    }
}

/// Where `db`, `file` and `signed_cookies` keep sessions, with the docs' words: a cache server's
/// restart, loss or absence (the server axis value `none`) cannot touch them.
fn elsewhere(session_engine: &str) -> &'static str {
    match session_engine.rsplit('.').next().unwrap_or_default() {
        "db" => {
            "keeps each session as a row of the django_session table in the database \
                 (Django docs, \"Using database-backed sessions\"), never in the cache"
        }
        "file" => {
            "keeps each session as a file in SESSION_FILE_PATH (Django docs, \"Using \
                   file-based sessions\"), never in the cache"
        }
        _ => {
            "keeps the session in the client's signed cookie (Django docs, \"Using cookie-based \
              sessions\"), never in the cache"
        }
    }
}

/// What the cell expects for sessions: the persistence promise, unless the engine keeps them
/// elsewhere.
pub fn expect_sessions(
    session_engine: &str,
    persistence: &Persistence,
    how: RestartKind,
    delay_secs: f64,
    restart_with: Option<&Persistence>,
) -> Expectation {
    SessionStore::of(session_engine)
        .decides(session_engine)
        .unwrap_or_else(|| expect(persistence, how, delay_secs, restart_with))
}

/// memcached writes nothing to disk (memcached.org: "an in-memory key-value store"; its wiki's
/// "Warm restart" keeps items across a restart only with `-e` and a memory file, which cachegate
/// does not pass): any restart, graceful or SIGKILL, starts empty. The session engine decides
/// first, as for Redis.
pub fn expect_sessions_in_memory_only(session_engine: &str) -> Expectation {
    SessionStore::of(session_engine)
        .decides(session_engine)
        .unwrap_or_else(|| {
            expectation(
                Promise::Lose,
                "memcached keeps items in memory only (memcached.org: \"in-memory key-value \
                 store\"; warm restart needs -e, not used): a restarted server starts empty",
            )
        })
}

/// memcached's eviction as the eviction report names it, in place of a maxmemory policy.
pub const MEMCACHED_LRU: &str = "memcached LRU per slab class";
/// memcached started with `-M` (`--disable-evictions`).
pub const MEMCACHED_NO_EVICTION: &str = "memcached -M (no eviction)";

/// Which of the two memcached runs with: `-M`/`--disable-evictions` among its options or not.
pub fn memcached_policy(options: &[String]) -> &'static str {
    let disabled = options
        .iter()
        .flat_map(|line| line.split_whitespace())
        .any(|o| o == "-M" || o == "--disable-evictions");
    if disabled {
        MEMCACHED_NO_EVICTION
    } else {
        MEMCACHED_LRU
    }
}

/// What a maxmemory policy means for sessions next to fill keys written without a TTL
/// (redis.io "Key eviction": `noeviction` refuses writes; `volatile-*` evict only keys with an
/// expire set; `allkeys-*` any key).
pub fn expect_sessions_under_eviction(session_engine: &str, policy: &str) -> Expectation {
    if let Some(x) = SessionStore::of(session_engine).decides(session_engine) {
        return x;
    }
    match policy {
        // memcached -h: "-M, --disable-evictions  return error on memory exhausted instead of
        // evicting".
        MEMCACHED_NO_EVICTION => expectation(
            Promise::Keep,
            "memcached -M returns an error when memory is exhausted instead of evicting \
             (memcached -h: --disable-evictions)",
        ),
        // memcached's doc/protocol.txt and wiki ("Memory allocation", "Slab rebalancing"), and
        // memcached.org/blog/modern-lru: items live in slab classes by size; a full class
        // evicts from the cold end of its segmented LRU, where items fetched again since they
        // were written arrive last; the slab automover (on by default in 1.6) moves pages
        // between classes.
        MEMCACHED_LRU => expectation(
            Promise::Either,
            "memcached evicts within the slab class a new item needs (items of a similar size), \
             coldest first: items fetched again since they were written (a session read after \
             login) go after items never read; its slab automover moves memory between \
             classes. Sessions go when the fill shares their class and outlasts the items \
             colder than them (memcached wiki, Memory allocation; memcached.org, Modern LRU)",
        ),
        "noeviction" => expectation(
            Promise::Keep,
            "noeviction never removes keys: writes are refused instead (OOM)",
        ),
        p if p.starts_with("volatile-") => expectation(
            Promise::Lose,
            "volatile-* evicts only keys with a TTL: the cache engine's sessions, never the fill keys",
        ),
        _ => expectation(
            Promise::Either,
            "allkeys-* may evict any key, sessions included",
        ),
    }
}

/// What a topology promises about acknowledged writes and reads, from the Redis docs, shown
/// with outage results on a topology.
pub fn topology_promise(topology: crate::server::Topology) -> Option<&'static str> {
    use crate::server::Topology;
    Some(match topology {
        Topology::Standalone => return None,
        // https://redis.io/docs/latest/operate/oss_and_stack/management/replication/
        Topology::Replicas(_) => {
            "replication is asynchronous: a replica serves whatever it has received, so a read \
             from it may miss a write the primary acknowledged (Redis docs, Replication)"
        }
        // https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/
        Topology::Sentinel { .. } => {
            "Sentinel promotes a replica when a quorum sees the primary down; replication is \
             asynchronous, so writes acknowledged by the old primary and not yet replicated are \
             lost in the failover (WAIT narrows but does not close that window) (Redis docs, \
             Sentinel: consistency under partitions)"
        }
        // https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/
        Topology::Cluster { .. } => {
            "each key lives on the shard owning its hash slot; a shard's replica is promoted \
             when its primary fails, losing writes it had not received (Redis Cluster \
             specification: write safety)"
        }
    })
}

/// What a failover promises about writes the old primary acknowledged, when the primary goes
/// down `how` and a replica takes over; `wait` is the `WAIT` replica count a write needed to
/// count as acknowledged, of `replicas` replicas.
pub fn expect_failover(
    server: &ServerRef,
    how: RestartKind,
    replicas: u8,
    wait: Option<u32>,
) -> Expectation {
    let e = expectation;
    match wait {
        // https://redis.io/docs/latest/commands/wait/
        Some(n) if n >= replicas as u32 => e(
            Promise::Keep,
            &format!(
                "a write counted as acknowledged only once WAIT reported {n} replica(s) had it, \
                 and there are {replicas}: whichever replica takes over holds it (Redis docs, WAIT)"
            ),
        ),
        _ if how != RestartKind::Kill && waits_for_replicas_on_shutdown(server) => e(
            Promise::Keep,
            "a primary shutting down waits (up to shutdown-timeout, 10 s) until its replicas \
             have everything it acknowledged before it exits (redis.conf `shutdown-timeout`, \
             SHUTDOWN docs, Redis 7.0 and Valkey)",
        ),
        Some(n) => e(
            Promise::Either,
            &format!(
                "WAIT {n} of {replicas} replicas: the replica that takes over may be one that \
                 did not have the write; WAIT does not make Redis strongly consistent (Redis docs, \
                 WAIT)"
            ),
        ),
        None => e(
            Promise::Either,
            "replication is asynchronous: writes the primary acknowledged and had not yet sent \
             to its replicas are lost; how many depends on the lag when it went down (Redis \
             docs, Replication)",
        ),
    }
}

/// Redis 7.0 made SIGTERM and SHUTDOWN wait for lagging replicas (`shutdown-timeout`); every
/// Valkey release has it (forked from 7.2).
fn waits_for_replicas_on_shutdown(server: &ServerRef) -> bool {
    match server.family {
        Family::Valkey => true,
        Family::Redis => server.version.first().is_some_and(|major| *major >= 7),
        _ => false,
    }
}

/// What the documented zero-downtime upgrade promises: a new server started as a replica of the
/// old one, synced, written to by the clients once they are pointed at it, then promoted, loses
/// nothing written before the switch and needs no downtime. The promise holds only if `to` can
/// replicate from `from` at all, which the docs leave to the versions.
// https://redis.io/docs/latest/operate/oss_and_stack/management/admin/ ("Upgrading or restarting
// a Redis instance without downtime")
pub const ROLLING_UPGRADE_PROMISE: &str =
    "start the new server as a replica, wait for the initial sync (the same number of keys on \
     both), allow writes on it (replica-read-only no), point the clients at it, promote it \
     (REPLICAOF NO ONE) and shut the old one down: nothing written before the switch is lost \
     and no downtime is needed (Redis docs, Administration: upgrading without downtime)";

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Persistence {
        s.parse().unwrap()
    }

    #[test]
    fn promises_follow_the_docs() {
        use Promise::*;
        use RestartKind::*;
        let cases = [
            ("none", Graceful, 0.0, Lose),
            ("none", Kill, 0.0, Lose),
            ("rdb", Graceful, 0.0, Keep),
            ("rdb", Nosave, 0.0, Lose),
            ("rdb", Kill, 0.0, Lose),
            ("rdb:1/1", Kill, 3.0, Keep),
            ("rdb:60/1", Kill, 3.0, Either),
            ("aof-always", Kill, 0.0, Keep),
            ("aof-everysec", Kill, 0.0, Either),
            ("rdb+aof-no", Nosave, 0.0, Keep),
            ("none", Save, 0.0, Keep),
            ("rdb", Save, 0.0, Keep),
        ];
        for (mode, how, delay, want) in cases {
            assert_eq!(
                expect(&p(mode), how, delay, None).promise,
                want,
                "{mode} {how:?} {delay}"
            );
        }
        assert!(expect(&p("aof-everysec"), Kill, 0.0, None)
            .not_separable
            .is_some());
        assert!(expect(&p("aof-always"), Kill, 0.0, None)
            .not_separable
            .is_none());
        // A changed config: the file the new config loads decides.
        let changed = [
            ("rdb", Graceful, "aof-always", Lose),
            ("aof-always", Graceful, "none", Lose),
            ("aof-always", Kill, "aof-everysec", Keep),
            ("rdb+aof-always", Graceful, "none", Keep),
            ("rdb+aof-always", Nosave, "rdb", Lose),
            ("rdb", Graceful, "none", Keep),
            ("rdb:1/1", Kill, "none", Lose),
            ("aof-always", Save, "none", Keep),
            ("none", Save, "aof-always", Lose),
        ];
        for (mode, how, after, want) in changed {
            assert_eq!(
                expect(&p(mode), how, 0.0, Some(&p(after))).promise,
                want,
                "{mode} {how:?} -> {after}"
            );
        }
    }

    #[test]
    fn session_engines_decide_before_the_cache() {
        use Promise::*;
        let engine = |m: &str| format!("django.contrib.sessions.backends.{m}");
        for m in ["cached_db", "db", "file", "signed_cookies"] {
            assert_eq!(
                expect_sessions(&engine(m), &p("none"), RestartKind::Kill, 0.0, None).promise,
                Keep,
                "{m}"
            );
            assert_eq!(
                expect_sessions_under_eviction(&engine(m), "volatile-lru").promise,
                Keep,
                "{m}"
            );
        }
        let cache = engine("cache");
        assert_eq!(
            expect_sessions(&cache, &p("none"), RestartKind::Kill, 0.0, None).promise,
            Lose
        );
        for (policy, want) in [
            ("noeviction", Keep),
            ("volatile-lru", Lose),
            ("volatile-ttl", Lose),
            ("allkeys-lru", Either),
        ] {
            assert_eq!(
                expect_sessions_under_eviction(&cache, policy).promise,
                want,
                "{policy}"
            );
        }
        assert_eq!(
            expect_sessions_under_eviction("redis_sessions.session", "volatile-lru").promise,
            Either
        );
        assert_eq!(expect_sessions_in_memory_only(&cache).promise, Lose);
        assert_eq!(
            expect_sessions_in_memory_only(&engine("cached_db")).promise,
            Keep
        );
    }
}
