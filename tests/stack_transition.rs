//! `stack-transition` on real servers and the real app: users log in through one client stack
//! (Django 5.2 + redis-py 5.2, or Django 4.2 + redis-py 4.6), a second app on the other stack
//! takes over on the same redis and accounts, then both serve at once. The outcome is checked
//! against the evidence (counts, the `to` app's log in the run folder), not against a known answer.
//! A second test keeps the stack and changes django-redis's compressor between the two sides, and
//! checks cache entries in both directions as well as sessions.

mod common;

use cachegate::results::checks::stack_transition::StackTransitionCheck;
use cachegate::results::checks::upgrade::Items;
use cachegate::results::{CellResult, Verdict};

#[test]
fn sessions_of_one_django_stack_read_through_another_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"[matrix]
name = "stack-transition"
[axes]
server = ["redis@7.4"]
stack = ["django-5.2", "django-4.2"]
settings = ["cache"]
[stacks."django-5.2"]
python = "3.11"
packages = ["django==5.2.*", "redis==5.2.*"]
[stacks."django-4.2"]
python = "3.11"
packages = ["django==4.2.*", "redis==4.6.*"]
[settings.cache]
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
[settings.cache.CACHES.default]
BACKEND = "django.core.cache.backends.redis.RedisCache"
[scenario]
kind = "stack-transition"
users = 4
[[axes.variant]]
label = "to-5.2"
to_stack = "django-5.2"
[[axes.variant]]
label = "to-4.2"
to_stack = "django-4.2"
[[exclude]]
stack = "django-5.2"
variant = "to-5.2"
[[exclude]]
stack = "django-4.2"
variant = "to-4.2"
"#;
    let (_, text, results) = common::run_matrix(dir.path(), body);
    assert_eq!(results.len(), 2, "{text}");
    let run_dir = common::only_run_dir(&dir.path().join("out"));
    for r in &results {
        let id = &r.cell_id;
        let c = r
            .check
            .as_ref()
            .and_then(|c| c.stack_transition())
            .unwrap_or_else(|| panic!("{id}: no check: {}", r.verdict_reason));
        let (from, to) = (
            r.axes["stack"].as_str(),
            r.axes["variant"].trim_start_matches("to-"),
        );
        assert!(
            c.from.starts_with(from) && c.to.starts_with(&format!("django-{to}")),
            "{c:?}"
        );
        assert_eq!(
            c.sessions.written, 4,
            "{id}: every user logged in through `from`"
        );
        let s = &c.sessions;
        assert_eq!(s.kept + s.lost + s.unknown, s.written, "{id}: {c:?}");
        let m = &c.mixed_reads;
        assert_eq!(m.written, 4 * 4, "{id}: {c:?}");
        assert_eq!(m.kept + m.lost + m.unknown, m.written, "{id}: {c:?}");
        let all_kept = s.kept == s.written && m.kept == m.written;
        assert_eq!(
            r.verdict == Verdict::Pass,
            all_kept,
            "{id}: {}",
            r.verdict_reason
        );
        // The `to` app's log is kept, and its exceptions are what it logged.
        let base = r.server.as_ref().unwrap().log.clone().unwrap();
        let to_log = run_dir.join(base.trim_end_matches(".log").to_string() + ".to-app.log");
        let log = std::fs::read_to_string(&to_log).unwrap();
        for e in &c.to_exceptions {
            let signature = e.rsplit_once(" (x").map_or(e.as_str(), |(s, _)| s);
            assert!(
                log.contains(signature.split(':').next().unwrap()),
                "{id}: {e}"
            );
        }
    }
    let html = std::fs::read_to_string(run_dir.join("index.html")).unwrap();
    assert!(html.contains("<h2>Client-stack transitions (sessions and cache entries)</h2>"));
}

fn transition(r: &CellResult) -> &StackTransitionCheck {
    r.check
        .as_ref()
        .and_then(|c| c.stack_transition())
        .unwrap_or_else(|| panic!("{}: no check: {}", r.cell_id, r.verdict_reason))
}

/// Every entry written was classified once, three of each kind.
fn entries_add_up(id: &str, by_kind: &std::collections::BTreeMap<String, Items>) -> Items {
    assert_eq!(
        by_kind.keys().map(String::as_str).collect::<Vec<_>>(),
        ["dict", "int", "text"],
        "{id}"
    );
    for (kind, i) in by_kind {
        assert_eq!(i.written, 3, "{id} {kind}: {i:?}");
        assert_eq!(
            i.kept + i.changed + i.lost + i.unknown,
            i.written,
            "{id} {kind}"
        );
    }
    Items::total(by_kind.values())
}

#[test]
fn cache_entries_and_sessions_across_django_redis_compressor_settings() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"[matrix]
name = "settings-transition"
[axes]
server = ["redis@7.4"]
stack = ["django-redis"]
settings = ["plain", "zlib"]
[stacks.django-redis]
python = "3.11"
packages = ["django==5.2.*", "redis==5.2.*", "django-redis==5.4.*"]
[settings.plain]
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
[settings.plain.CACHES.default]
BACKEND = "django_redis.cache.RedisCache"
LOCATION = "{server}"
[settings.zlib]
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
[settings.zlib.CACHES.default]
BACKEND = "django_redis.cache.RedisCache"
LOCATION = "{server}"
OPTIONS = { COMPRESSOR = "django_redis.compressors.zlib.ZlibCompressor" }
[scenario]
kind = "stack-transition"
users = 4
[[axes.variant]]
label = "to-plain"
to_settings = "plain"
[[axes.variant]]
label = "to-zlib"
to_settings = "zlib"
[[exclude]]
settings = "zlib"
variant = "to-zlib"
"#;
    let (_, text, results) = common::run_matrix(dir.path(), body);
    assert_eq!(results.len(), 3, "{text}");
    let run_dir = common::only_run_dir(&dir.path().join("out"));
    for r in &results {
        let id = &r.cell_id;
        let c = transition(r);
        let to = r.axes["variant"].trim_start_matches("to-");
        assert!(c.to.ends_with(&format!("settings {to}")), "{id}: {c:?}");
        assert_eq!(c.sessions.written, 4, "{id}");
        let ahead = entries_add_up(id, &c.values);
        let back = entries_add_up(id, &c.values_back);
        let all_kept = c.sessions.kept == 4
            && c.mixed_reads.kept == c.mixed_reads.written
            && ahead.kept == ahead.written
            && back.kept == back.written;
        assert_eq!(
            r.verdict == Verdict::Pass,
            all_kept,
            "{id}: {}",
            r.verdict_reason
        );
        // An entry `to` could not read is an exception `to` logged; one `from` could not read
        // back, an exception in `from`'s app log.
        let base = r.server.as_ref().unwrap().log.clone().unwrap();
        let to_log = std::fs::read_to_string(
            run_dir.join(base.trim_end_matches(".log").to_string() + ".to-app.log"),
        )
        .unwrap();
        if ahead.unknown > 0 {
            assert!(!c.to_exceptions.is_empty(), "{id}: {c:?}");
            for e in &c.to_exceptions {
                let signature = e.rsplit_once(" (x").map_or(e.as_str(), |(s, _)| s);
                assert!(
                    to_log.contains(signature.split(':').next().unwrap()),
                    "{id}: {e}"
                );
            }
        }
        if back.unknown > 0 {
            assert!(!r.app_exceptions.is_empty(), "{id}: {:?}", r.app_exceptions);
        }
    }
    // The control: one settings table on both sides reads back everything it wrote.
    let control = common::find_cell(&results, "redis@7.4/none/django-redis/plain/to-plain");
    assert_eq!(control.verdict, Verdict::Pass, "{}", control.verdict_reason);
    // Entries zlib wrote and plain read are the same story whichever phase they were read in:
    // in `zlib → plain` they are read by `to`, in `plain → zlib` by `from` in the mixed phase.
    let up = transition(common::find_cell(
        &results,
        "redis@7.4/none/django-redis/plain/to-zlib",
    ));
    let down = transition(common::find_cell(
        &results,
        "redis@7.4/none/django-redis/zlib/to-plain",
    ));
    assert_eq!(up.values_back, down.values, "{up:?}\n{down:?}");
    assert_eq!(up.values, down.values_back, "{up:?}\n{down:?}");
    let html = std::fs::read_to_string(run_dir.join("index.html")).unwrap();
    assert!(html.contains("entries read by to"), "no entries column");
}
