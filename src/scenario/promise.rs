//! What a persistence mode promises about data written before a restart, as the Redis/Valkey
//! documentation states it (redis.io "Redis persistence"; the same for Valkey):
//!
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
//! Session engines change what a lost cache means: `cached_db`, `db` and `signed_cookies` keep
//! sessions outside the cache, so they survive whatever happens to the server.

use serde::{Deserialize, Serialize};

use crate::server::{Fsync, Persistence, StopKind};

/// What should happen to data written before the restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Promise {
    /// Everything acknowledged survives.
    Keep,
    /// Data written since the last snapshot (or all of it) is gone.
    Lose,
    /// The mode makes no promise either way for this restart (a save point may or may not have
    /// fired in between; a changed config): observed, not judged.
    Either,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expectation {
    pub promise: Promise,
    /// Why, in words, for the report.
    pub because: String,
    /// Set when this test cannot tell apart what the modes promise (e.g. fsync policies under a
    /// process kill): the report shows it instead of implying a difference was tested.
    pub not_separable: Option<String>,
}

/// How the server goes down and comes back in a persistence scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartKind {
    Graceful,
    Nosave,
    Kill,
}

impl RestartKind {
    pub fn stop_kind(self) -> StopKind {
        match self {
            RestartKind::Graceful => StopKind::Graceful,
            RestartKind::Nosave => StopKind::NoSave,
            RestartKind::Kill => StopKind::Kill,
        }
    }
}

const FSYNC_NOTE: &str =
    "appendfsync always, everysec and no all write() each command before replying, so a \
    killed process loses nothing under any of them; only an OS crash or power loss separates them, \
    which this test does not cause";

/// What `persistence` promises for data written `delay_secs` before the server goes down `how`,
/// restarted with `restart_with` (None: the same config).
pub fn expect(
    persistence: &Persistence,
    how: RestartKind,
    delay_secs: f64,
    restart_with: Option<&Persistence>,
) -> Expectation {
    let e = |promise, because: &str| Expectation {
        promise,
        because: because.to_string(),
        not_separable: None,
    };
    if let Some(after) = restart_with.filter(|a| *a != persistence) {
        return e(
            Promise::Either,
            &format!("restarted with a different config ({persistence} → {after}): what is loaded depends on the server version"),
        );
    }
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
    if persistence.save_points.is_empty() {
        return e(
            Promise::Lose,
            "no RDB save points and no AOF: nothing is written to disk",
        );
    }
    match how {
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

/// Does this Django session engine keep sessions outside the cache?
pub fn engine_outlives_cache(session_engine: &str) -> bool {
    session_engine.ends_with(".cached_db")
        || session_engine.ends_with(".db")
        || session_engine.ends_with(".signed_cookies")
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
    if engine_outlives_cache(session_engine) {
        return Expectation {
            promise: Promise::Keep,
            because: format!("{session_engine} keeps sessions outside the cache"),
            not_separable: None,
        };
    }
    expect(persistence, how, delay_secs, restart_with)
}

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
        assert_eq!(
            expect(&p("rdb"), Graceful, 0.0, Some(&p("aof-always"))).promise,
            Either
        );
        let cached_db = "django.contrib.sessions.backends.cached_db";
        assert_eq!(
            expect_sessions(cached_db, &p("none"), Kill, 0.0, None).promise,
            Keep
        );
    }
}
