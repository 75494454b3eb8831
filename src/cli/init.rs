//! `cachegate init`: a starter for a team's own repository. It writes a commented login-flow
//! matrix for the team's stack and servers (`matrices/NAME.toml`), a CI workflow that runs it
//! nightly against a baseline, and a `.gitignore` entry for run folders. It asks nothing (flags
//! say the stack), checks everything before writing anything, and never overwrites a file.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::exit_code;
use crate::server::{Family, Provisioner, ServerRef};

const MATRIX_TEMPLATE: &str = include_str!("init_matrix.toml");
const WORKFLOW_TEMPLATE: &str = include_str!("init_workflow.yml");

/// Where the workflow goes (GitHub Actions); `--no-workflow` leaves it out.
const WORKFLOW_DIR: &str = ".github/workflows";
/// The run folders `cachegate run` writes by default, kept out of version control.
const GITIGNORE_ENTRY: &str = "/reports/";

/// What `init` writes, from its flags.
#[derive(Debug, Clone, clap::Args)]
pub struct InitOptions {
    /// The matrix's name: it is written to matrices/NAME.toml and run with `cachegate run NAME`.
    #[arg(long, default_value = "sessions")]
    pub name: String,
    /// Servers to run against (repeatable), e.g. `--server redis@7.4 --server valkey@9.1`.
    #[arg(long = "server", default_value = "redis@7.4")]
    pub servers: Vec<String>,
    /// Python version of the stack's virtualenv.
    #[arg(long, default_value = "3.11")]
    pub python: String,
    /// Django version (`django==VERSION.*`).
    #[arg(long, default_value = "5.2")]
    pub django: String,
    /// redis-py version (`redis==VERSION.*`).
    #[arg(long, default_value = "5.2")]
    pub redis_py: String,
    /// django-redis version: sessions go through django-redis instead of Django's own
    /// RedisCache.
    #[arg(long)]
    pub django_redis: Option<String>,
    /// Write no CI workflow.
    #[arg(long)]
    pub no_workflow: bool,
}

pub fn run(opts: &InitOptions) -> Result<i32> {
    for line in init(Path::new("."), opts)? {
        println!("{line}");
    }
    Ok(exit_code::OK)
}

/// Write the starter into `dir`; returns what was done, a line each.
pub fn init(dir: &Path, opts: &InitOptions) -> Result<Vec<String>> {
    let matrix = matrix_text(opts)?;
    let matrix_path = PathBuf::from("matrices").join(format!("{}.toml", opts.name));
    let workflow_path =
        PathBuf::from(WORKFLOW_DIR).join(format!("cachegate-nightly-{}.yml", opts.name));
    let mut files = vec![(matrix_path, matrix)];
    if !opts.no_workflow {
        files.push((
            workflow_path,
            WORKFLOW_TEMPLATE.replace("{name}", &opts.name),
        ));
    }
    // Refuse before writing anything, so a refusal leaves the folder as it was.
    let existing: Vec<String> = files
        .iter()
        .filter(|(path, _)| dir.join(path).symlink_metadata().is_ok())
        .map(|(path, _)| path.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(Error::Usage(format!(
            "{} already exists; init never overwrites (choose another --name, or remove it)",
            existing.join(" and ")
        )));
    }
    let mut done = Vec::new();
    for (path, text) in &files {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        // `create_new`: a file appearing since the check above is still not overwritten.
        use std::io::Write;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&full)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        done.push(format!("wrote {}", path.display()));
    }
    done.push(ignore_run_folders(dir)?);
    done.push(format!(
        "next: `cachegate check {0}` lists its cells, `cachegate run {0}` runs them",
        opts.name
    ));
    Ok(done)
}

/// The matrix for these options, after checking each of them.
fn matrix_text(opts: &InitOptions) -> Result<String> {
    let name_ok = !opts.name.is_empty()
        && opts
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(Error::Usage(format!(
            "--name `{}`: use letters, digits, `-` and `_` (it names a file and a run folder)",
            opts.name
        )));
    }
    let mut servers = Vec::new();
    for s in &opts.servers {
        let server: ServerRef = s
            .parse()
            .map_err(|e| Error::Usage(format!("--server `{s}`: {e}")))?;
        if !matches!(server.family, Family::Redis | Family::Valkey) {
            return Err(Error::Usage(format!(
                "--server `{s}`: init writes Redis cache settings, for redis and valkey servers \
                 (a memcached matrix: see `cachegate list`, backends)"
            )));
        }
        if Provisioner::catalog_entry(&server).is_none() {
            return Err(Error::Usage(format!(
                "--server `{s}`: no such version in the catalog (`cachegate servers list`)"
            )));
        }
        servers.push(format!("\"{s}\""));
    }
    for (flag, version) in [
        ("--python", Some(&opts.python)),
        ("--django", Some(&opts.django)),
        ("--redis-py", Some(&opts.redis_py)),
        ("--django-redis", opts.django_redis.as_ref()),
    ] {
        if let Some(v) = version {
            let numeric = !v.is_empty() && v.split('.').all(|p| p.parse::<u32>().is_ok());
            if !numeric {
                return Err(Error::Usage(format!(
                    "{flag} `{v}`: a version like 5.2 (pinned as ==5.2.*)"
                )));
            }
        }
    }
    let django_major: u32 = opts
        .django
        .split('.')
        .next()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let mut packages = vec![
        format!("\"django=={}.*\"", opts.django),
        format!("\"redis=={}.*\"", opts.redis_py),
    ];
    let (backend, options) = match &opts.django_redis {
        Some(v) => {
            packages.push(format!("\"django-redis=={v}.*\""));
            (
                "django_redis.cache.RedisCache",
                "OPTIONS = { CLIENT_CLASS = \"django_redis.client.DefaultClient\" }\n",
            )
        }
        // Django's own Redis backend arrived in 4.0.
        None if django_major < 4 => {
            return Err(Error::Usage(format!(
                "--django {}: Django's own RedisCache needs Django 4.0 or later; add \
                 --django-redis VERSION",
                opts.django
            )))
        }
        None => ("django.core.cache.backends.redis.RedisCache", ""),
    };
    Ok(MATRIX_TEMPLATE
        .replace("{name}", &opts.name)
        .replace("{servers}", &servers.join(", "))
        .replace("{python}", &opts.python)
        .replace("{packages}", &packages.join(", "))
        .replace("{backend}", backend)
        .replace("{options}", options))
}

/// Add `/reports/` to `.gitignore` unless an entry already ignores the run folders.
fn ignore_run_folders(dir: &Path) -> Result<String> {
    let path = dir.join(".gitignore");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io("reading .gitignore", e)),
    };
    let ignored = text.lines().map(str::trim).any(|l| {
        matches!(
            l,
            "reports" | "reports/" | "/reports" | "/reports/" | "/reports/*"
        )
    });
    if ignored {
        return Ok(".gitignore already ignores reports/".into());
    }
    let mut text = text;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# cachegate's run folders\n");
    text.push_str(GITIGNORE_ENTRY);
    text.push('\n');
    std::fs::write(&path, text).map_err(|e| Error::io("writing .gitignore", e))?;
    Ok(format!("added {GITIGNORE_ENTRY} to .gitignore"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> InitOptions {
        InitOptions {
            name: "sessions".into(),
            servers: vec!["redis@7.4".into()],
            python: "3.11".into(),
            django: "5.2".into(),
            redis_py: "5.2".into(),
            django_redis: None,
            no_workflow: false,
        }
    }

    #[test]
    fn bad_flags_are_refused_with_the_flag_named() {
        for (edit, needle) in [
            (
                (|o: &mut InitOptions| o.name = "../x".into()) as fn(&mut InitOptions),
                "--name `../x`",
            ),
            (
                |o| o.servers = vec!["redis@4.0".into()],
                "--server `redis@4.0`",
            ),
            (|o| o.servers = vec!["memcached@1.6".into()], "memcached"),
            (|o| o.servers = vec!["redix@7".into()], "--server `redix@7`"),
            (|o| o.django = "five".into(), "--django `five`"),
            (|o| o.django = "3.2".into(), "needs Django 4.0"),
        ] {
            let mut o = opts();
            edit(&mut o);
            let e = matrix_text(&o).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
            assert_eq!(e.exit_code(), exit_code::BAD_INPUT);
        }
    }

    #[test]
    fn django_redis_switches_the_backend() {
        let mut o = opts();
        assert!(matrix_text(&o)
            .unwrap()
            .contains("BACKEND = \"django.core.cache.backends.redis.RedisCache\""));
        o.django_redis = Some("6".into());
        let text = matrix_text(&o).unwrap();
        assert!(text.contains("\"django-redis==6.*\""), "{text}");
        assert!(text.contains("BACKEND = \"django_redis.cache.RedisCache\""));
        assert!(text.contains("LOCATION = \"{server}/0\""));
    }
}
