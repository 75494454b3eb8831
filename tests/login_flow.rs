//! The login flow against the real bundled Django app on real stacks (gunicorn, redis, HTTP on
//! 127.0.0.1): verdicts, per-step numbers and exception signatures.

mod common;

use cachegate::results::Verdict;

/// Two stacks that install from PyPI on Python 3.11; shared by the tests (venvs are cached).
const STACKS: &str = r#"
[stacks."django-4.2"]
python = "3.11"
packages = ["django==4.2.*", "redis==4.6.*"]
[stacks."django-5.2"]
python = "3.11"
packages = ["django==5.2.*", "redis==5.2.*"]
"#;

const SETTINGS: &str = r#"
[settings.good]
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_CACHE_ALIAS = "sessions"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
[settings.good.CACHES.default]
BACKEND = "django.core.cache.backends.redis.RedisCache"
LOCATION = "{server}/0"
[settings.good.CACHES.sessions]
BACKEND = "django.core.cache.backends.redis.RedisCache"
LOCATION = "{server}/1"

[settings.misconfigured]
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
[settings.misconfigured.CACHES.default]
BACKEND = "django.core.cache.backends.redis.RedisCache"
OPTIONS = { CLIENT_CLASS = "django_redis.client.DefaultClient" }

[settings.misconfigured-other-expectation]
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
[settings.misconfigured-other-expectation.CACHES.default]
BACKEND = "django.core.cache.backends.redis.RedisCache"
OPTIONS = { CLIENT_CLASS = "django_redis.client.DefaultClient" }
"#;

#[test]
fn two_stacks_good_and_misconfigured_settings() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        r#"[matrix]
name = "login"
[axes]
server = ["valkey@9.1"]
stack = ["django-4.2", "django-5.2"]
settings = ["good", "misconfigured", "misconfigured-other-expectation"]
{STACKS}{SETTINGS}
[scenario]
kind = "login-flow"
users = 4
iterations = 2
reads = 3
[gates]
"login.failed_p50" = "< 60s"
[[expect]]
when = {{ settings = "misconfigured" }}
verdict = "fail"
signature = "unexpected keyword argument 'CLIENT_CLASS'"
[[expect]]
when = {{ settings = "misconfigured-other-expectation" }}
verdict = "fail"
signature = "ConnectionError"
"#
    );
    let (code, text, results) = common::run_matrix(dir.path(), &body);
    assert_eq!(
        code,
        Some(1),
        "the wrongly expected signature is a FAIL: {text}"
    );
    assert_eq!(results.len(), 6, "{text}");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            common::only_run_dir(&dir.path().join("out")).join("summary.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(
        text.contains("latency: every timed request, failed ones included"),
        "{text}"
    );
    assert!(
        !text.contains("users launched"),
        "goose's own messages stay out of cachegate's output: {text}"
    );

    for r in &results {
        let stack = r.stack.as_ref().expect("stack recorded");
        let django = &stack.packages["django"];
        assert!(
            django.starts_with(if r.cell_id.contains("django-4.2") {
                "4.2."
            } else {
                "5.2."
            }),
            "{django}"
        );
        assert!(r.harness_cpu_seconds > 0.0);
        match r.axes["settings"].as_str() {
            "good" => {
                assert_eq!(
                    r.verdict,
                    Verdict::Pass,
                    "{}: {}",
                    r.cell_id,
                    r.verdict_reason
                );
                // 4 users x 2 flows, each: csrf, register, login, 3 reads, logout, check.
                let step = |name: &str| r.ops.iter().find(|o| o.op == name).unwrap();
                for (name, n) in [
                    ("csrf", 8),
                    ("register", 8),
                    ("login", 8),
                    ("me", 24),
                    ("logout", 8),
                    ("me-anon", 8),
                ] {
                    assert_eq!(
                        (step(name).ok, step(name).errors),
                        (n, 0),
                        "{}: {name}",
                        r.cell_id
                    );
                    let l = &step(name).latency;
                    assert!(l.p50_us > 0.0 && l.p50_us <= l.p99_us && l.p99_us <= l.max_us);
                }
                assert_eq!(r.counts.sent, 64);
                assert_eq!(
                    r.http_status.get("401"),
                    Some(&8),
                    "logged-out reads are refused"
                );
                assert!(r.app_exceptions.is_empty(), "{:?}", r.app_exceptions);
                let settings = r.app_settings.as_ref().unwrap();
                let location = settings["CACHES"]["sessions"]["LOCATION"].as_str().unwrap();
                assert!(
                    location.starts_with("redis://127.0.0.1:") && location.ends_with("/1"),
                    "{location}"
                );
            }
            other => {
                let e = r
                    .app_exceptions
                    .first()
                    .unwrap_or_else(|| panic!("{}: no exception recorded", r.cell_id));
                assert_eq!(
                    e.signature,
                    "TypeError: AbstractConnection.__init__() got an unexpected keyword argument 'CLIENT_CLASS'"
                );
                assert_eq!(
                    e.first_step, "login",
                    "register touches no cache; login saves the session"
                );
                assert_eq!(e.count, 8, "every login hit it");
                assert_eq!(r.http_status.get("500"), Some(&8));
                // Every login failed: their wait is kept apart, and what users waited is not
                // a p50 of 0.
                let login = r.ops.iter().find(|o| o.op == "login").unwrap();
                assert_eq!((login.ok, login.errors), (0, 8));
                assert_eq!(login.latency.count, 0);
                let failed = login.failed_latency.as_ref().expect("failed latency kept");
                assert_eq!(failed.count, 8);
                assert!(failed.p50_us > 0.0 && failed.p50_us <= failed.max_us);
                let total = r.total().unwrap();
                assert_eq!(
                    total.waited().count,
                    total.ok + total.failed_latency.as_ref().unwrap().count
                );
                assert!(total.waited().max_us >= failed.max_us);
                let gate = summary["gates"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|g| g["cell_id"] == r.cell_id.as_str())
                    .expect("the login.failed_p50 gate was judged");
                assert_eq!(gate["value"].as_f64(), Some(failed.p50_us), "{gate}");
                if other == "misconfigured" {
                    assert_eq!(
                        r.verdict,
                        Verdict::Xfail,
                        "{}: {}",
                        r.cell_id,
                        r.verdict_reason
                    );
                } else {
                    assert_eq!(r.verdict, Verdict::Fail, "{}", r.cell_id);
                    assert!(
                        r.verdict_reason
                            .contains("not with the expected signature `ConnectionError`"),
                        "{}",
                        r.verdict_reason
                    );
                }
            }
        }
    }
    assert!(
        common::leaked_servers().is_empty(),
        "{:?}",
        common::leaked_servers()
    );
}

/// `[[include]]` adds a one-off combination with a stack and settings that are defined but on no
/// axis, and it runs like any other cell.
#[test]
fn include_adds_a_stack_and_settings_off_the_axes() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        r#"[matrix]
name = "include"
[axes]
server = ["valkey@9.1"]
stack = ["django-5.2"]
settings = ["good"]
{STACKS}{SETTINGS}
[settings.cached-db]
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
[settings.cached-db.CACHES.default]
BACKEND = "django.core.cache.backends.redis.RedisCache"
[[include]]
server = "valkey@9.1"
stack = "django-4.2"
settings = "cached-db"
[scenario]
kind = "login-flow"
users = 2
iterations = 1
reads = 1
"#
    );
    let (code, text, results) = common::run_matrix(dir.path(), &body);
    assert_eq!(code, Some(0), "{text}");
    let ids: Vec<&str> = results.iter().map(|r| r.cell_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "valkey@9.1/none/django-5.2/good",
            "valkey@9.1/none/django-4.2/cached-db"
        ]
    );
    let included = &results[1];
    assert!(included.stack.as_ref().unwrap().packages["django"].starts_with("4.2."));
    assert_eq!(
        included.app_settings.as_ref().unwrap()["SESSION_ENGINE"],
        "django.contrib.sessions.backends.cached_db"
    );
    assert_eq!(included.counts.ok, 2 * 6, "{}", included.verdict_reason);

    // A name that nothing defines is still bad input.
    std::fs::write(
        dir.path().join("bad.toml"),
        body.replace(
            "stack = \"django-4.2\"\nsettings",
            "stack = \"h9\"\nsettings",
        ),
    )
    .unwrap();
    let (code, text) = common::run_cli(dir.path(), &["check", "bad.toml"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("[stacks.\"h9\"]"), "{text}");
}

/// An external app (here the bundled one, started by the test) driven through `[target] url`
/// with JSON bodies: no stack is provisioned by the harness for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_target_with_json_bodies() {
    let server_bin = common::provision("redis@6.2");
    let server =
        cachegate::server::ServerProcess::start(&common::spec("redis@6.2", "none"), &server_bin)
            .await
            .unwrap();
    let cache = cachegate::server::provision::default_cache_dir();
    let spec: cachegate::stack::StackSpec =
        toml::from_str("python = \"3.11\"\npackages = [\"django==5.2.*\", \"redis==5.2.*\"]")
            .unwrap();
    let stack = tokio::task::spawn_blocking(move || {
        cachegate::stack::provision("django-5.2", &spec, &cache, None)
    })
    .await
    .unwrap()
    .unwrap();
    let table: toml::Table = toml::from_str(
        "SESSION_ENGINE = \"django.contrib.sessions.backends.cache\"\n[CACHES.default]\nBACKEND = \"django.core.cache.backends.redis.RedisCache\"",
    )
    .unwrap();
    let settings = cachegate::target::django_settings(
        &table,
        &cachegate::server::deployment::Addresses::standalone(&server),
    )
    .unwrap();
    let code = cachegate::target::app::AppCode::of(&Default::default()).unwrap();
    let (stack_ref, code_ref, settings_ref) = (&stack, &code, &settings);
    let start_app = move |threads: u32| async move {
        let target = cachegate::target::TargetSection {
            workers: std::num::NonZeroU32::new(1),
            threads: std::num::NonZeroU32::new(threads),
            ..Default::default()
        };
        cachegate::target::app::AppProcess::start(stack_ref, code_ref, &target, settings_ref).await
    };
    // gthread: keep-alive connections (checked below against the sync worker).
    let mut app = start_app(2).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        r#"[matrix]
name = "external"
[axes]
server = ["redis@6.2"]
[target]
url = "{}"
format = "json"
[scenario]
kind = "login-flow"
users = 2
iterations = 2
reads = 2
"#,
        app.base_url()
    );
    let (code, text, results) = tokio::task::spawn_blocking(move || {
        let r = common::run_matrix(dir.path(), &body);
        drop(dir);
        r
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{text}");
    let r = &results[0];
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.verdict_reason);
    assert_eq!(r.target.as_deref(), Some(app.base_url().as_str()));
    assert!(r.stack.is_none());
    assert_eq!(r.counts.ok, 4 * 7);

    // The sessions really went to the app's redis: one session key per logged-in user is gone
    // after logout, but the per-user profile cache entries remain.
    let mut c = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*profile*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys.len(), 4, "{keys:?}");

    // `[target] threads` above 1 keeps a client's connection open; the sync worker closes it
    // after each response.
    let base = app.base_url();
    let answered = tokio::task::spawn_blocking(move || answered_on_one_connection(&base, 3))
        .await
        .unwrap();
    assert_eq!(
        answered, 3,
        "gthread worker answers 3 requests on one connection"
    );
    app.stop(None).await;
    let mut sync_app = start_app(1).await.unwrap();
    let base = sync_app.base_url();
    let answered = tokio::task::spawn_blocking(move || answered_on_one_connection(&base, 3))
        .await
        .unwrap();
    assert_eq!(answered, 1, "sync worker closes after the first response");
    sync_app.stop(None).await;
}

/// Send up to `n` GET /health/ requests one after another on one TCP connection; how many were
/// answered before the server closed it.
fn answered_on_one_connection(base_url: &str, n: usize) -> usize {
    use std::io::{BufRead, BufReader, Read, Write};
    let addr = base_url.trim_start_matches("http://");
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for answered in 0..n {
        let request = format!("GET /health/ HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        if writer.write_all(request.as_bytes()).is_err() {
            return answered;
        }
        let mut status = String::new();
        if reader.read_line(&mut status).unwrap_or(0) == 0 {
            return answered;
        }
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        assert_eq!(body, b"ok");
    }
    n
}

/// The login flow on the app alone (`server = "none"`) with Django's `db` and `file` session
/// engines: the baselines a cache is compared with.
#[test]
fn db_and_file_session_baselines_run_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        r#"[matrix]
name = "baselines"
[axes]
server = ["none"]
stack = ["django-5.2"]
settings = ["db", "file"]
{STACKS}
[settings.db]
SESSION_ENGINE = "django.contrib.sessions.backends.db"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
[settings.file]
SESSION_ENGINE = "django.contrib.sessions.backends.file"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
[scenario]
kind = "login-flow"
users = 4
iterations = 2
reads = 3
"#
    );
    let (code, text, results) = common::run_matrix(dir.path(), &body);
    assert_eq!(code, Some(0), "{text}");
    for id in ["none/none/django-5.2/db", "none/none/django-5.2/file"] {
        let r = common::find_cell(&results, id);
        assert_eq!(r.verdict, Verdict::Pass, "{id}: {}", r.verdict_reason);
        let total = r.total().unwrap();
        assert_eq!(total.errors, 0, "{id}");
        assert!(total.ok > 0, "{id}: nothing succeeded");
        assert!(r.app_exceptions.is_empty(), "{id}: {:?}", r.app_exceptions);
    }
}

/// Issue 16.4: Django answers `SessionInterrupted` with a 400 (an HTML page), not a 500, so it
/// never reaches `got_request_exception`. The real trigger, as Django's message says: the user
/// logs out in a concurrent request while another request of theirs is still running; when
/// that one saves the session (SESSION_SAVE_EVERY_REQUEST), it is gone. The slow request is
/// /me/ waiting on its default cache (a second server held by CLIENT PAUSE); the logout runs on
/// the other gunicorn worker. The app must log it, and cachegate classify it with its status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_interrupted_by_a_concurrent_logout_is_classified_with_its_400() {
    use cachegate::server::ServerProcess;
    let bin = common::provision("redis@6.2");
    let sessions = ServerProcess::start(&common::spec("redis@6.2", "none"), &bin)
        .await
        .unwrap();
    let slow_cache = ServerProcess::start(&common::spec("redis@6.2", "none"), &bin)
        .await
        .unwrap();
    let cache = cachegate::server::provision::default_cache_dir();
    let spec: cachegate::stack::StackSpec =
        toml::from_str("python = \"3.11\"\npackages = [\"django==5.2.*\", \"redis==5.2.*\"]")
            .unwrap();
    let stack = tokio::task::spawn_blocking(move || {
        cachegate::stack::provision("django-5.2", &spec, &cache, None)
    })
    .await
    .unwrap()
    .unwrap();
    let table: toml::Table = toml::from_str(&format!(
        r#"SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_CACHE_ALIAS = "sessions"
SESSION_SAVE_EVERY_REQUEST = true
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
[CACHES.default]
BACKEND = "django.core.cache.backends.redis.RedisCache"
LOCATION = "{}"
[CACHES.sessions]
BACKEND = "django.core.cache.backends.redis.RedisCache"
LOCATION = "{}"
"#,
        slow_cache.url(),
        sessions.url()
    ))
    .unwrap();
    let settings = cachegate::target::django_settings(
        &table,
        &cachegate::server::deployment::Addresses::standalone(&sessions),
    )
    .unwrap();
    let code = cachegate::target::app::AppCode::of(&Default::default()).unwrap();
    let mut app =
        cachegate::target::app::AppProcess::start(&stack, &code, &Default::default(), &settings)
            .await
            .unwrap();
    let base = app.base_url();
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .build()
        .unwrap();
    let token = |v: serde_json::Value| v["csrftoken"].as_str().unwrap().to_string();
    let csrf: serde_json::Value = http
        .get(format!("{base}/csrf/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user = [("username", "interrupted"), ("password", "pw-1")];
    let post = |path: &str, csrf: String| {
        http.post(format!("{base}{path}"))
            .header("X-CSRFToken", csrf)
            .form(&user)
            .send()
    };
    let registered = post("/register/", token(csrf)).await.unwrap();
    assert_eq!(registered.status(), 201);
    let login = post("/login/", token(registered.json().await.unwrap()))
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let csrf = token(login.json().await.unwrap());

    // Pause the default cache's server for 5 s (CLIENT PAUSE answers at once; every other
    // client's commands wait until it ends).
    let redis_conn = |url: String| async move {
        redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    };
    let mut paused = redis_conn(slow_cache.url()).await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(5000)
        .query_async(&mut paused)
        .await
        .unwrap();
    // GETs the session server has answered: /me/ loading its session is one more.
    let watch = redis_conn(sessions.url()).await;
    let session_gets = || {
        let mut conn = watch.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut conn)
                .await
                .unwrap();
            info.lines()
                .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
                .and_then(|rest| rest.split(',').next())
                .map_or(0, |n| n.parse::<u64>().unwrap())
        }
    };
    let before = session_gets().await;
    let me = tokio::spawn(http.get(format!("{base}/me/")).send());
    let waiting = std::time::Instant::now();
    while session_gets().await == before {
        assert!(
            waiting.elapsed().as_secs() < 4,
            "/me/ never loaded its session"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // /me/ has its session and waits on the paused cache; log out meanwhile.
    let logout = post("/logout/", csrf).await.unwrap();
    assert_eq!(logout.status(), 200);
    let me = me.await.unwrap().unwrap();
    drop(watch);
    assert_eq!(me.status(), 400, "{}", me.text().await.unwrap_or_default());

    let log = app.log_text();
    app.stop(None).await;
    let found = cachegate::target::exceptions::from_log(&log, |_| "me");
    let interrupted = found
        .iter()
        .find(|e| e.innermost_type == "django.contrib.sessions.exceptions.SessionInterrupted")
        .unwrap_or_else(|| panic!("not classified: {found:?}\n{log}"));
    assert!(
        interrupted
            .signature
            .contains("The request's session was deleted before the request completed"),
        "{interrupted:?}"
    );
    assert_eq!(interrupted.status, Some(400));
    assert_eq!(interrupted.first_path, "/me/");
    assert_eq!(interrupted.count, 1);
}

/// The login flow through Django's PyMemcacheCache on a real memcached: `{server}` is memcached's
/// `127.0.0.1:PORT` (that sessions really live there shows in tests/persistence.rs: a restart
/// loses them).
#[test]
fn login_flow_through_pymemcache_on_memcached() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"[matrix]
name = "mc-login"
[axes]
server = ["memcached@1.6"]
stack = ["django-5.2-mc"]
settings = ["memcached"]
[stacks."django-5.2-mc"]
python = "3.11"
packages = ["django==5.2.*", "redis==5.2.*", "pymemcache==4.*"]
[settings.memcached]
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
[settings.memcached.CACHES.default]
BACKEND = "django.core.cache.backends.memcached.PyMemcacheCache"
LOCATION = "{server}"
[scenario]
kind = "login-flow"
users = 4
iterations = 2
reads = 3
"#;
    let (code, text, results) = common::run_matrix(dir.path(), body);
    assert_eq!(code, Some(0), "{text}");
    let r = common::find_cell(&results, "memcached@1.6/none/django-5.2-mc/memcached");
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.verdict_reason);
    assert_eq!(r.total().unwrap().errors, 0);
    let settings = r.app_settings.as_ref().unwrap();
    let location = settings["CACHES"]["default"]["LOCATION"].as_str().unwrap();
    assert!(
        location.starts_with("127.0.0.1:") && !location.contains("redis://"),
        "{location}"
    );
    assert!(r.app_exceptions.is_empty(), "{:?}", r.app_exceptions);
}
