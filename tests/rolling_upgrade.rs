//! `rolling-upgrade` on real servers, the real app and real HTTP: `to` attached as a replica of
//! the cell's server, synced, then switched over to under login traffic through a service
//! address the harness moves. Redis 6.2 ↔ 7.4 in both directions, as processes and in
//! containers.
//!
//! Asserted: what the documented procedure promises where the docs promise it (a replica newer
//! than its primary syncs: an upgrade keeps every session and key), and otherwise that each
//! outcome is classified from the evidence: the counts, `to`'s own log lines, the logs in the
//! run folder; processes and containers agree.

mod common;

use cachegate::results::checks::rolling::{RollingOutcome, RollingUpgradeCheck};
use cachegate::results::{CellResult, Verdict};

const MATRIX: &str = r#"[matrix]
name = "rolling"
[axes]
server = ["redis@6.2", "redis@7.4"]
persistence = ["rdb"]
runtime = ["process", "container"]
stack = ["django-5.2"]
settings = ["cache"]

[stacks."django-5.2"]
python = "3.11"
packages = ["django==5.2.*", "redis==5.2.*"]
[settings.cache]
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
[settings.cache.CACHES.default]
BACKEND = "django.core.cache.backends.redis.RedisCache"
LOCATION = "{server}/0"

[scenario]
use = "rolling-upgrade"
logged_in_users = 4
keyspace = 3
users = 3
duration = "6s"
switch_at = "2s"

[[axes.variant]]
label = "to-6.2"
to = "redis@6.2"
[[axes.variant]]
label = "to-7.4"
to = "redis@7.4"
[[exclude]]
server = "redis@6.2"
variant = "to-6.2"
[[exclude]]
server = "redis@7.4"
variant = "to-7.4"
"#;

fn rolling(r: &CellResult) -> &RollingUpgradeCheck {
    r.check
        .as_ref()
        .and_then(|c| c.rolling_upgrade())
        .unwrap_or_else(|| {
            panic!(
                "{}: no rolling-upgrade check: {}",
                r.cell_id, r.verdict_reason
            )
        })
}

/// The outcome agrees with the counts and the logs, and the verdict with the promise.
fn classified_from_evidence(r: &CellResult, run_dir: &std::path::Path) {
    let c = rolling(r);
    let id = &r.cell_id;
    let base = r.server.as_ref().unwrap().log.clone().unwrap();
    let to_log = run_dir.join(base.trim_end_matches(".log").to_string() + ".to.log");
    let to_log = std::fs::read_to_string(&to_log)
        .unwrap_or_else(|e| panic!("{id}: {}: {e}", to_log.display()));
    assert!(
        to_log.contains(c.to.split(' ').nth(1).unwrap()),
        "{id}: {}",
        c.to
    );
    // The raw keys and the sessions (they share database 0).
    assert!(c.keys_on_from >= 6 * 3 + 4, "{id}: {c:?}");
    match c.outcome {
        RollingOutcome::SwitchedOver => {
            let keys = c.all_keys();
            assert_eq!((c.sessions.written, keys.written), (4, 18), "{id}: {c:?}");
            assert_eq!(
                c.keys_on_to, c.keys_on_from,
                "{id}: synced means the same keys"
            );
            assert!(c.sync_ms.is_some(), "{id}");
            assert!(
                c.requests_after_switch > 0,
                "{id}: the traffic ran through the switch: {c:?}"
            );
            assert!(c.switch_at_seconds >= 2.0, "{id}");
            assert_eq!(
                c.sessions.kept + c.sessions.lost + c.sessions.unknown,
                4,
                "{id}"
            );
            let clean = c.sessions.kept == 4 && keys.kept == 18 && c.failed_after_switch == 0;
            assert_eq!(c.matches, clean, "{id}: {c:?}");
            assert_eq!(
                r.verdict == Verdict::Pass,
                clean,
                "{id}: {}",
                r.verdict_reason
            );
            assert!(r.verdict_reason.contains("logins failed for"), "{id}");
            // `from` was shut down by the procedure, not by a crash.
            assert!(
                !r.verdict_reason.contains("exited"),
                "{id}: {}",
                r.verdict_reason
            );
        }
        RollingOutcome::SyncFailed | RollingOutcome::RefusedToStart => {
            let signature = c.signature.as_deref().expect("a failure names its cause");
            if c.outcome == RollingOutcome::SyncFailed {
                for line in signature.split("; ") {
                    assert!(to_log.contains(line), "{id}: `{line}` is not in `to`'s log");
                }
                assert_eq!(c.sync_ms, None, "{id}");
            }
            assert_eq!(r.verdict, Verdict::Fail, "{id}");
            assert!(
                r.verdict_reason.contains(signature),
                "{id}: {}",
                r.verdict_reason
            );
            assert_eq!(c.requests_after_switch, 0, "{id}: no switch without a sync");
        }
    }
}

#[test]
fn rolling_upgrade_and_rollback_through_replication_on_processes_and_containers() {
    let dir = tempfile::tempdir().unwrap();
    let (_, text, results) = common::run_matrix(dir.path(), MATRIX);
    assert_eq!(results.len(), 4, "{text}");
    let run_dir = common::only_run_dir(&dir.path().join("out"));
    for r in &results {
        eprintln!("{} {:?}: {}", r.cell_id, r.verdict, r.verdict_reason);
    }
    for r in &results {
        classified_from_evidence(r, &run_dir);
    }
    for runtime in ["", "container/"] {
        // A replica may be newer than its primary (Redis docs, Replication): the upgrade
        // direction syncs and, switched over, keeps every session and key.
        let up = common::find_cell(
            &results,
            &format!("redis@6.2/rdb/{runtime}django-5.2/cache/to-7.4"),
        );
        let c = rolling(up);
        assert_eq!(
            c.outcome,
            RollingOutcome::SwitchedOver,
            "{}",
            up.verdict_reason
        );
        assert_eq!(
            (c.sessions.kept, c.all_keys().kept),
            (4, 18),
            "{}",
            up.verdict_reason
        );
    }
    // The runtime changes how the servers run, not what they do with each other.
    for (from, to) in [("redis@6.2", "to-7.4"), ("redis@7.4", "to-6.2")] {
        let p = common::find_cell(&results, &format!("{from}/rdb/django-5.2/cache/{to}"));
        let c = common::find_cell(
            &results,
            &format!("{from}/rdb/container/django-5.2/cache/{to}"),
        );
        assert_eq!(rolling(p).outcome, rolling(c).outcome, "{from} {to}");
        assert_eq!(
            rolling(p).signature.is_some(),
            rolling(c).signature.is_some(),
            "{from} {to}: {} vs {}",
            p.verdict_reason,
            c.verdict_reason
        );
    }
    // The report's table and grid.
    let html = std::fs::read_to_string(run_dir.join("index.html")).unwrap();
    assert!(
        html.contains("Rolling upgrades through replication"),
        "no rolling section"
    );
    // Everything started is gone: processes, containers, volumes.
    assert!(
        common::leaked_servers().is_empty(),
        "{:?}",
        common::leaked_servers()
    );
    let run = format!("label=cachegate.run={}", results[0].run_id);
    for what in [&["ps", "-a", "-q"][..], &["volume", "ls", "-q"][..]] {
        let out = std::process::Command::new("docker")
            .args(what)
            .args(["--filter", &run])
            .output()
            .expect("the docker CLI runs");
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "{what:?}: {out:?}"
        );
    }
}
