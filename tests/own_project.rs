//! A team's own Django project as the target (`[target] project`): the bookshelf example under
//! tests/projects/ (form login through LoginView, a custom user model that logs in by email, a
//! cached page, its own tests), run by the bundled own-project matrices on two Django stacks and
//! two real Redis servers, with the real bundled-app machinery (gunicorn, goose, the hook).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cachegate::results::Verdict;

fn project_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/projects/bookshelf")
}

/// Every file under the project with its size, modification time and contents: what a run must
/// leave exactly as it was.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                todo.push(p.clone());
            }
            let content = if meta.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                vec![]
            };
            out.insert(p, (meta.len(), meta.modified().unwrap(), content));
        }
    }
    out
}

#[test]
fn a_teams_project_runs_its_login_flow_sessions_and_tests_across_stacks_and_servers() {
    let before = snapshot(&project_dir());
    let dir = tempfile::tempdir().unwrap();
    let matrices = Path::new(env!("CARGO_MANIFEST_DIR")).join("matrices");
    let mut args: Vec<std::ffi::OsString> = ["run", "--no-progress", "--out", "out"]
        .iter()
        .map(Into::into)
        .collect();
    for m in ["own-project", "own-project-sessions", "own-project-tests"] {
        args.push(matrices.join(format!("{m}.toml")).into());
    }
    let (code, text) = common::run_cli(dir.path(), &args);
    assert_eq!(code, Some(0), "{text}");
    let run_dir = common::only_run_dir(&dir.path().join("out"));
    let results = cachegate::results::store::read_jsonl(&run_dir.join("results.jsonl")).unwrap();
    let cells = |matrix: &str| {
        results
            .iter()
            .filter(|r| r.matrix == matrix)
            .collect::<Vec<_>>()
    };

    // The login flow through the project's own LoginView, as accounts its user model made.
    let logins = cells("own-project");
    assert_eq!(logins.len(), 8);
    for r in &logins {
        let stack = r.stack.as_ref().unwrap();
        // requirements.txt says Django<5.0: the stack's pin wins, and what ran is recorded.
        let django = &stack.packages["django"];
        let pinned = if r.cell_id.contains("django-5.2") {
            "5.2."
        } else {
            "4.2."
        };
        assert!(django.starts_with(pinned), "{}: django {django}", r.cell_id);
        assert!(
            r.target
                .as_deref()
                .unwrap()
                .contains("8 accounts made through accounts.User"),
            "{:?}",
            r.target
        );
        if r.cell_id.ends_with("/django-redis") {
            assert_eq!(
                r.verdict,
                Verdict::Pass,
                "{}: {}",
                r.cell_id,
                r.verdict_reason
            );
            let me = r.ops.iter().find(|o| o.op == "me").unwrap();
            // 8 users x 3 flows x 3 reads, each showing "Signed in as <email>".
            assert_eq!(me.ok, 72, "{}: {:?}", r.cell_id, r.ops);
            let anon = r.ops.iter().find(|o| o.op == "me-anon").unwrap();
            assert_eq!(anon.ok, 24, "{:?}", r.ops);
            assert!(r.ops.iter().all(|o| o.op != "register" || o.ok == 0));
        } else {
            // Signed in (sessions in the database), then the project's own exception, raised
            // from the backend's TypeError, on the first cached page.
            assert_eq!(
                r.verdict,
                Verdict::Xfail,
                "{}: {}",
                r.cell_id,
                r.verdict_reason
            );
            let e = &r.app_exceptions[0];
            assert_eq!(
                e.exception_type, "bookshelf.views.ShelfUnavailable",
                "{e:?}"
            );
            assert!(e.signature.starts_with("TypeError:"), "{e:?}");
            assert_eq!(e.first_step, "me");
            assert!(e.frames.iter().any(|f| f.starts_with("redis/")), "{e:?}");
            assert!(e.chain[0].starts_with("bookshelf.views.ShelfUnavailable: shelf of user"));
            let login = r.ops.iter().find(|o| o.op == "login").unwrap();
            assert_eq!(login.ok, 24, "{:?}", r.ops);
        }
    }

    // Sessions live where the project's own settings put them (the cache): lost without
    // persistence, kept with RDB, on both stacks and servers.
    let sessions = cells("own-project-sessions");
    assert_eq!(sessions.len(), 8);
    for r in &sessions {
        assert_eq!(
            r.verdict,
            Verdict::Pass,
            "{}: {}",
            r.cell_id,
            r.verdict_reason
        );
        let summary = r.check.as_ref().unwrap().summary();
        let kept = if r.cell_id.contains("/rdb/") {
            "8/8"
        } else {
            "0/8"
        };
        assert!(
            summary.starts_with(&format!("{kept} sessions kept")),
            "{}: {summary}",
            r.cell_id
        );
    }

    // The project's own suite: green on Django 4.2; on 5.2 exactly the test that signs out with
    // GET fails, with its signature.
    let suites = cells("own-project-tests");
    assert_eq!(suites.len(), 4);
    for r in &suites {
        let suite = r.check.as_ref().unwrap().test_suite().unwrap();
        assert_eq!(suite.total(), 4, "{suite:?}");
        if r.cell_id.contains("django-4.2") {
            assert_eq!(
                r.verdict,
                Verdict::Pass,
                "{}: {}",
                r.cell_id,
                r.verdict_reason
            );
            assert_eq!(suite.passed, 4);
        } else {
            assert_eq!(
                r.verdict,
                Verdict::Xfail,
                "{}: {}",
                r.cell_id,
                r.verdict_reason
            );
            assert_eq!((suite.passed, suite.failed), (3, 1), "{suite:?}");
            let f = &suite.failures[0];
            assert_eq!(
                f.test,
                "bookshelf.tests.ShelfTests.test_the_sign_out_link_signs_out"
            );
            assert!(
                f.signature.starts_with("AssertionError: 405 != 302"),
                "{f:?}"
            );
            assert!(
                f.frames
                    .iter()
                    .any(|x| x.starts_with("bookshelf/tests.py:")),
                "{f:?}"
            );
        }
    }

    let html = std::fs::read_to_string(run_dir.join("index.html")).unwrap();
    for seen in [
        "bookshelf.views.ShelfUnavailable",
        "test_the_sign_out_link_signs_out",
        "The project&#39;s own tests",
    ] {
        assert!(
            html.contains(seen) || html.contains(&seen.replace("&#39;", "'")),
            "the report does not show {seen}"
        );
    }
    assert_eq!(
        snapshot(&project_dir()),
        before,
        "the run wrote into the project"
    );
    assert_eq!(common::leaked_servers(), Vec::<String>::new());
}

#[test]
fn a_project_that_is_not_one_is_refused_with_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let matrix = |target: &str, kind: &str| {
        format!(
            "[matrix]\nname = \"p\"\n[axes]\nserver = [\"redis@7.4\"]\nstack = [\"s\"]\nsettings = [\"x\"]\n\
             [stacks.s]\npackages = [\"django==5.2.*\"]\n[settings.x]\nDEBUG = false\n\
             [target]\n{target}\n[scenario]\nkind = \"{kind}\"\n"
        )
    };
    let project = project_dir();
    let cases = [
        (
            format!("project = \"{}\"\nsettings = \"bookshelf.nope\"", project.display()),
            "login-flow",
            "field `target.settings`: settings module `bookshelf.nope` is not in",
        ),
        (
            "project = \"/nonexistent/project\"\nsettings = \"a.settings\"".to_string(),
            "login-flow",
            "field `target.project`: /nonexistent/project has no manage.py",
        ),
        (
            "login = \"form\"".to_string(),
            "login-flow",
            "field `target.login`: `form` signs in with accounts made through the project's user model",
        ),
        (
            String::new(),
            "django-tests",
            "field `target.project`: scenario kind `django-tests` runs a project's own test suite",
        ),
        (
            format!(
                "project = \"{}\"\nsettings = \"bookshelf.settings\"\nurl = \"http://127.0.0.1:8000\"",
                project.display()
            ),
            "login-flow",
            "set either `project`",
        ),
    ];
    for (target, kind, expected) in cases {
        std::fs::write(dir.path().join("m.toml"), matrix(&target, kind)).unwrap();
        let (code, text) = common::run_cli(dir.path(), &["check", "m.toml"]);
        assert_eq!(code, Some(2), "{target}: {text}");
        assert!(text.contains(expected), "{target}: {text}");
        assert!(text.contains("m.toml:"), "names the file and line: {text}");
    }
}
