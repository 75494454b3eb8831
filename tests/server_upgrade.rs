//! `server-upgrade` on real servers and the real app: one server writes sessions and keys, is
//! stopped, and another version (or family) starts on its data directory. Four versions (redis
//! 6.2, 7.0, 7.4 and valkey 9.1), each transition in both directions, for RDB and AOF.
//!
//! What is asserted is what the persistence mode and Redis promise, and that each outcome is
//! classified from what happened: an upgrade to a newer Redis keeps everything (redis.io,
//! "Redis persistence": newer versions load the RDB and AOF files of older ones); any other
//! transition is not promised, so its outcome is only checked against the evidence (the counts,
//! the server's own log line, the logs of both sides in the run folder).

mod common;

use cachegate::results::checks::upgrade::{UpgradeCheck, UpgradeOutcome};
use cachegate::results::{CellResult, Verdict};

const STACK_AND_SETTINGS: &str = r#"
[stacks."django-5.2"]
python = "3.11"
packages = ["django==5.2.*", "redis==5.2.*"]
[settings.cache]
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
[settings.cache.CACHES.default]
BACKEND = "django.core.cache.backends.redis.RedisCache"
"#;

/// Run `a` → `b` and `b` → `a` on `persistence`: the two cells, and the folder holding the run.
fn both_ways(a: &str, b: &str, persistence: &str) -> (Vec<CellResult>, tempfile::TempDir) {
    both_ways_on(a, b, persistence, &["process"])
}

/// As `both_ways`, on each of `runtimes`: one cell per direction and runtime.
fn both_ways_on(
    a: &str,
    b: &str,
    persistence: &str,
    runtimes: &[&str],
) -> (Vec<CellResult>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let runtimes = format!("{runtimes:?}");
    let body = format!(
        r#"[matrix]
name = "upgrade-{a}-{b}"
[axes]
server = ["{a}", "{b}"]
persistence = ["{persistence}"]
runtime = {runtimes}
stack = ["django-5.2"]
settings = ["cache"]
{STACK_AND_SETTINGS}
[scenario]
kind = "server-upgrade"
users = 4
keyspace = 3
[[axes.variant]]
label = "to-a"
to = "{a}"
[[axes.variant]]
label = "to-b"
to = "{b}"
[[exclude]]
server = "{a}"
variant = "to-a"
[[exclude]]
server = "{b}"
variant = "to-b"
"#
    );
    let (_, text, results) = common::run_matrix(dir.path(), &body);
    assert_eq!(
        results.len(),
        2 * runtimes.matches(',').count() + 2,
        "{text}"
    );
    (results, dir)
}

fn upgrade(r: &CellResult) -> &UpgradeCheck {
    r.check
        .as_ref()
        .and_then(|c| c.upgrade())
        .unwrap_or_else(|| panic!("{}: no upgrade check: {}", r.cell_id, r.verdict_reason))
}

/// The outcome agrees with the counts and the evidence, and the verdict with the promise.
fn classified_from_evidence(r: &CellResult, run_dir: &std::path::Path) {
    let c = upgrade(r);
    let id = &r.cell_id;
    let total = c.total();
    assert_eq!(total.written, 4 + 6 * 3, "{id}: {c:?}");
    let log = |suffix: &str| {
        let base = r.server.as_ref().unwrap().log.clone().unwrap();
        let path = run_dir.join(base.trim_end_matches(".log").to_string() + suffix);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    // Both sides' logs are in the run folder: `from` alone, and the whole story.
    let from_log = log(".from.log");
    let whole_log = log(".log");
    assert!(whole_log.starts_with(&from_log), "{id}");
    match c.outcome {
        UpgradeOutcome::RefusedToStart => {
            let signature = c
                .signature
                .as_deref()
                .expect("a refusal names its log lines");
            for line in signature.split("; ") {
                assert!(
                    whole_log[from_log.len()..].contains(line),
                    "{id}: `{line}` is not in the log of `to`"
                );
                assert!(!from_log.contains(line), "{id}: `{line}` came from `from`");
            }
            assert_eq!(r.verdict, Verdict::Fail, "{id}");
            assert!(
                r.verdict_reason.contains(signature),
                "{id}: {}",
                r.verdict_reason
            );
            assert_eq!(
                total.kept + total.changed + total.lost,
                0,
                "{id}: nothing was read"
            );
        }
        outcome => {
            assert_eq!(
                total.kept + total.changed + total.lost + total.unknown,
                total.written,
                "{id}: {c:?}"
            );
            assert_eq!(
                outcome,
                UpgradeOutcome::of(total.written, total.kept),
                "{id}"
            );
            // Graceful stop on rdb or aof: the mode promises to keep everything.
            assert_eq!(
                r.verdict == Verdict::Pass,
                outcome == UpgradeOutcome::Kept,
                "{id}: {}",
                r.verdict_reason
            );
        }
    }
    // What each side reported itself as.
    assert!(
        from_log.contains(&c.from.split(' ').nth(1).unwrap().to_string()),
        "{id}"
    );
}

fn check_pair(a: &str, b: &str, persistence: &str, a_older_redis: bool) {
    let (results, dir) = both_ways(a, b, persistence);
    let run_dir = common::only_run_dir(&dir.path().join("out"));
    for r in &results {
        classified_from_evidence(r, &run_dir);
    }
    let up = common::find_cell(
        &results,
        &format!("{a}/{persistence}/django-5.2/cache/to-b"),
    );
    if a_older_redis {
        // A newer Redis loads an older one's files: the documented upgrade path keeps everything.
        assert_eq!(
            upgrade(up).outcome,
            UpgradeOutcome::Kept,
            "{}",
            up.verdict_reason
        );
        assert_eq!(up.verdict, Verdict::Pass, "{}", up.verdict_reason);
    }
    let html = std::fs::read_to_string(run_dir.join("index.html")).unwrap();
    assert!(html.contains("<h2>Upgrade paths ("), "no upgrade grid");
    let md = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    assert!(md.contains("### Upgrade paths ("), "{md}");
}

#[test]
fn rdb_across_redis_minors_and_to_valkey_both_ways() {
    check_pair("redis@6.2", "redis@7.0", "rdb", true);
    check_pair("redis@7.4", "valkey@9.1", "rdb", false);
}

#[test]
fn aof_across_redis_minors_and_to_valkey_both_ways() {
    check_pair("redis@6.2", "redis@7.0", "aof-everysec", true);
    check_pair("redis@7.4", "valkey@9.1", "aof-everysec", false);
}

/// The same transitions in containers (a new container from `to`'s image on the same named volume)
/// are classified from the evidence like processes, and come out as they do on processes: the
/// runtime changes how the server runs, not what it does with its files.
#[test]
fn rdb_upgrade_and_rollback_in_containers_match_processes() {
    let (a, b) = ("redis@6.2", "valkey@9.1");
    let (results, dir) = both_ways_on(a, b, "rdb", &["process", "container"]);
    let run_dir = common::only_run_dir(&dir.path().join("out"));
    for r in &results {
        classified_from_evidence(r, &run_dir);
    }
    for (from, to) in [(a, "to-b"), (b, "to-a")] {
        let process = common::find_cell(&results, &format!("{from}/rdb/django-5.2/cache/{to}"));
        let container = common::find_cell(
            &results,
            &format!("{from}/rdb/container/django-5.2/cache/{to}"),
        );
        let identity = &container.server.as_ref().unwrap().identity;
        assert_eq!(identity.runtime, "container", "{}", container.cell_id);
        let (p, c) = (upgrade(process), upgrade(container));
        assert_eq!(
            (p.outcome, p.total().kept, p.signature.as_deref()),
            (c.outcome, c.total().kept, c.signature.as_deref()),
            "{from} {to}: process `{}` vs container `{}`",
            process.verdict_reason,
            container.verdict_reason
        );
        assert_eq!(process.verdict, container.verdict);
    }
    // Both containers of each cell and its volume are gone.
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
