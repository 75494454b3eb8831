//! Authenticated and encrypted connections on real servers: a TLS-only redis with ACL users
//! (plaintext refused, the harness and the load logged in as who they should be, keys 0600 and
//! gone with the server), TLS support probed per binary, cache-ops over plaintext and TLS in one
//! run, and the bundled app's login flow over `rediss://` with three misconfigurations that fail
//! with their real exception signatures as XFAIL. No secret reaches any output.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use cachegate::results::Verdict;
use cachegate::scenario::resp::{RespConn, Value};
use cachegate::server::acl::{AclUser, Secrets};
use cachegate::server::tls::{supports_tls, TlsOptions};
use cachegate::server::{control, Endpoint, Protocol, ServerProcess};

const APP_PASSWORD: &str = "app-pw:with@odd/chars";

fn users() -> Vec<AclUser> {
    vec![AclUser {
        name: "app".into(),
        password: APP_PASSWORD.into(),
        rules: "~app:* +@all".into(),
    }]
}

/// Every file under `dir`, as text (lossy), for secret scans.
fn all_text(dir: &Path) -> Vec<(String, String)> {
    let mut out = vec![];
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        out.push((
            entry.display().to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}

/// Certificate folders whose owning harness is gone: the cell did not clean up.
fn orphaned_tls_dirs() -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cachegate-tls-"))
        .filter(|n| {
            !cachegate::scratch::owner_in_name(n)
                .is_some_and(|o| cachegate::scratch::owner_alive(&o))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_only_server_with_acl_users_serves_who_it_should() {
    let binary = common::provision("redis@7.4");
    assert_eq!(supports_tls(&binary).await, Ok(()));
    let mut spec = common::spec("redis@7.4", "none");
    spec.settings.users = users();
    spec.secrets =
        Some(Secrets::for_cell(Some(&TlsOptions::default()), &spec.settings.users).unwrap());
    let material = spec.tls().unwrap().clone();
    let dir = material.path("ca.crt").parent().unwrap().to_path_buf();
    for key in ["server.key", "client.key"] {
        let mode = std::fs::metadata(dir.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }

    let server = ServerProcess::start(&spec, &binary).await.unwrap();
    let harness = server.endpoint();
    assert_eq!(harness.user.as_deref(), Some("cachegate-harness"));
    assert!(harness.tls.is_some());
    assert!(
        server.url().starts_with("rediss://127.0.0.1:"),
        "{}",
        server.url()
    );

    // The blocking control path (readiness, SHUTDOWN) speaks TLS.
    assert!(control::ping(&harness));
    // Plaintext on the same port gets no PONG: the plaintext port is off.
    let plain = Endpoint::plain(harness.addr, None, Protocol::Resp);
    assert!(!control::ping(&plain));
    let mut raw = std::net::TcpStream::connect(harness.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    raw.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = raw.read(&mut buf).unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).contains("PONG"));

    // The async hot-loop connection over TLS, as the harness and as the ACL user.
    let mut conn = RespConn::connect(&harness, Duration::from_secs(2))
        .await
        .unwrap();
    let port = conn.query(&[b"CONFIG", b"GET", b"port"]).await.unwrap();
    assert_eq!(
        port,
        Value::Array(vec![
            Value::Bulk(b"port".to_vec()),
            Value::Bulk(b"0".to_vec())
        ])
    );
    let mut app = harness.clone();
    app.user = Some("app".into());
    app.password = Some(APP_PASSWORD.into());
    let mut conn = RespConn::connect(&app, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        conn.query(&[b"ACL", b"WHOAMI"]).await.unwrap(),
        Value::Bulk(b"app".to_vec())
    );
    // Its rules hold: keys outside `app:*` are refused.
    match conn.query(&[b"SET", b"other:1", b"x"]).await.unwrap() {
        Value::Error(e) => assert!(e.starts_with("NOPERM"), "{e}"),
        other => panic!("SET outside the user's keys answered {other:?}"),
    }
    // A wrong password is refused at connect, with the server's words.
    app.password = Some("rotated".into());
    let err = RespConn::connect(&app, Duration::from_secs(2))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("WRONGPASS"), "{err}");

    // Endpoints share the certificates; the last holder removes them.
    drop((server, spec, material, harness, app));
    assert!(
        !dir.exists(),
        "the certificates outlived the cell: {}",
        dir.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_support_is_probed_per_binary_in_the_servers_own_words() {
    let without = common::provision("redis@6.2");
    let why = supports_tls(&without).await.unwrap_err();
    assert!(why.contains("tls-port"), "{why}");
    let debian = common::provision("redis@7.0");
    assert_eq!(supports_tls(&debian).await, Ok(()));
}

#[test]
fn cache_ops_over_tls_and_plaintext_in_one_run_as_an_acl_user() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text, results) = common::run_matrix(
        dir.path(),
        &format!(
            r#"
[matrix]
name = "tls-ops"
[axes]
server = ["redis@7.4", "redis@6.2"]
transport = ["plaintext", "tls"]
[server]
users = [{{ name = "app", password = "{APP_PASSWORD}", rules = "~cg:* +@all" }},
         {{ name = "noexpire", password = "{APP_PASSWORD}", rules = "~cg:* +@all -expire" }}]
[scenario]
kind = "cache-ops"
connections = 8
duration = "2s"
warmup = "0s"
keyspace = 2000
acl_user = "app"
[[axes.variant]]
label = "app"
[[axes.variant]]
label = "noexpire"
acl_user = "noexpire"
mix = {{ get = 5, set = 4, expire = 1 }}
[[include]]
server = "redis@7.4"
transport = "tls"
variant = "noexpire"
[[exclude]]
variant = "noexpire"
[[expect]]
when = {{ variant = "noexpire" }}
verdict = "fail"
signature = "NOPERM"
"#
        ),
    );
    // UNSUPPORTED (redis 6.2 has no TLS) does not fail the run.
    assert_eq!(code, Some(0), "{text}");
    for id in [
        "redis@7.4/none/app",
        "redis@7.4/none/tls/app",
        "redis@6.2/none/app",
    ] {
        let r = common::find_cell(&results, id);
        assert_eq!(r.verdict, Verdict::Pass, "{id}: {}", r.verdict_reason);
        let t = r.total().unwrap();
        assert!(t.ok > 1000 && t.errors == 0, "{id}: {t:?}");
    }
    let plain = common::find_cell(&results, "redis@7.4/none/app")
        .total()
        .unwrap();
    let tls = common::find_cell(&results, "redis@7.4/none/tls/app")
        .total()
        .unwrap();
    println!(
        "redis 7.4, 8 connections: plaintext {:.0} ops/s p99 {:.0} µs; TLS {:.0} ops/s p99 {:.0} µs",
        plain.throughput,
        plain.waited().p99_us,
        tls.throughput,
        tls.waited().p99_us
    );
    let unsupported = common::find_cell(&results, "redis@6.2/none/tls/app");
    assert_eq!(unsupported.verdict, Verdict::Unsupported);
    assert!(
        unsupported
            .verdict_reason
            .contains("not supported by this build")
            && unsupported.verdict_reason.contains("Bad directive"),
        "{}",
        unsupported.verdict_reason
    );
    // The user's rules are what the load ran under: EXPIRE refused, everything else served.
    let narrow = common::find_cell(&results, "redis@7.4/none/tls/noexpire");
    assert_eq!(narrow.verdict, Verdict::Xfail, "{}", narrow.verdict_reason);
    assert!(
        narrow
            .errors
            .iter()
            .all(|e| e.example.starts_with("NOPERM")),
        "{:?}",
        narrow.errors
    );
    let expire = narrow.ops.iter().find(|o| o.op == "expire").unwrap();
    assert_eq!(expire.ok, 0, "{expire:?}");

    let run_dir = common::only_run_dir(&dir.path().join("out"));
    let junit = std::fs::read_to_string(run_dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains("<skipped") && junit.contains("UNSUPPORTED"),
        "{junit}"
    );
    for (file, text) in all_text(&run_dir) {
        assert!(!text.contains(APP_PASSWORD), "a password in {file}");
        assert!(!text.contains("PRIVATE KEY"), "a key in {file}");
    }
    assert_eq!(orphaned_tls_dirs(), Vec::<String>::new());
    assert_eq!(common::leaked_servers(), Vec::<String>::new());
}

/// The bundled `matrices/tls-auth.toml`: the login flow over `rediss://` as an ACL user passes;
/// no CA, the wrong CA, and an ACL user without EXISTS fail the way the matrix expects.
#[test]
fn login_flow_over_rediss_passes_and_misconfigurations_fail_as_expected() {
    let dir = tempfile::tempdir().unwrap();
    let matrix = Path::new(env!("CARGO_MANIFEST_DIR")).join("matrices/tls-auth.toml");
    let (code, text) = common::run_cli(
        dir.path(),
        &[
            "run".as_ref(),
            "--no-progress".as_ref(),
            "--out".as_ref(),
            "out".as_ref(),
            matrix.as_os_str(),
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    let run_dir = common::only_run_dir(&dir.path().join("out"));
    let results = cachegate::results::store::read_jsonl(&run_dir.join("results.jsonl")).unwrap();
    let cell = |s: &str| common::find_cell(&results, &format!("redis@7.4/none/tls/django-5.2/{s}"));

    let good = cell("tls-acl");
    assert_eq!(good.verdict, Verdict::Pass, "{}", good.verdict_reason);
    assert!(good.total().unwrap().ok > 50, "{:?}", good.total());
    let location = good.app_settings.as_ref().unwrap()["CACHES"]["default"]["LOCATION"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        location.starts_with("rediss://app:<redacted>@127.0.0.1:"),
        "{location}"
    );

    for (settings, signature) in [
        ("tls-no-ca", "CERTIFICATE_VERIFY_FAILED"),
        ("tls-wrong-ca", "CERTIFICATE_VERIFY_FAILED"),
        ("acl-too-narrow", "NoPermissionError"),
    ] {
        let r = cell(settings);
        assert_eq!(
            r.verdict,
            Verdict::Xfail,
            "{settings}: {}",
            r.verdict_reason
        );
        let first = &r
            .app_exceptions
            .first()
            .expect("the app logged why")
            .signature;
        assert!(first.contains(signature), "{settings}: {first}");
    }
    let html = std::fs::read_to_string(run_dir.join("index.html")).unwrap();
    assert!(html.contains("CERTIFICATE_VERIFY_FAILED"));
    for (file, text) in all_text(&run_dir) {
        for secret in ["app-pass-rotate-me", "narrow-pass", "PRIVATE KEY"] {
            assert!(!text.contains(secret), "{secret} in {file}");
        }
    }
    assert_eq!(orphaned_tls_dirs(), Vec::<String>::new());
}

/// `[server.tls] hosts` names the certificate: the harness verifies against the first name (as
/// a client that knows the service name would), and a client checking 127.0.0.1 is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_fails_hostname_checks_but_not_the_harness() {
    let binary = common::provision("redis@7.4");
    let opts = TlsOptions {
        hosts: vec!["redis.internal".into()],
        ..Default::default()
    };
    let mut spec = common::spec("redis@7.4", "none");
    spec.secrets = Some(Secrets::for_cell(Some(&opts), &[]).unwrap());
    let server = ServerProcess::start(&spec, &binary).await.unwrap();
    let endpoint = server.endpoint();
    assert!(control::ping(&endpoint));
    let material = endpoint.tls.clone().unwrap();
    let tcp = tokio::net::TcpStream::connect(endpoint.addr).await.unwrap();
    let by_ip = rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let Err(err) = tokio_rustls::TlsConnector::from(material.client_config())
        .connect(by_ip, tcp)
        .await
    else {
        panic!("a certificate for redis.internal does not cover 127.0.0.1");
    };
    assert!(
        err.to_string()
            .to_lowercase()
            .contains("not valid for name"),
        "{err}"
    );
}

/// session-persistence over TLS as an ACL user: the server restarts on the same certificates and
/// the app reconnects over `rediss://`; RDB keeps every session, as promised.
#[test]
fn sessions_survive_a_restart_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text, results) = common::run_matrix(
        dir.path(),
        &format!(
            r#"
[matrix]
name = "tls-sessions"
[axes]
server = ["redis@7.4"]
persistence = ["rdb"]
transport = ["tls"]
stack = ["django-5.2"]
settings = ["tls"]
[server]
users = [{{ name = "app", password = "{APP_PASSWORD}", rules = "~* +@all" }}]
[stacks."django-5.2"]
python = "3.11"
packages = ["django==5.2.*", "redis==5.2.*"]
[settings.tls]
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
[settings.tls.CACHES.default]
BACKEND = "django.core.cache.backends.redis.RedisCache"
LOCATION = "{{user:app}}/0"
OPTIONS = {{ ssl_ca_certs = "{{ca_cert}}" }}
[scenario]
kind = "session-persistence"
users = 6
restart = "graceful"
"#
        ),
    );
    assert_eq!(code, Some(0), "{text}");
    let r = common::find_cell(&results, "redis@7.4/rdb/tls/django-5.2/tls");
    assert_eq!(r.verdict, Verdict::Pass, "{}", r.verdict_reason);
    let p = r.check.as_ref().and_then(|c| c.persistence()).unwrap();
    assert_eq!((p.before, p.kept), (6, 6), "{p:?}");
    assert_eq!(orphaned_tls_dirs(), Vec::<String>::new());
}
