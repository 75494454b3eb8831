//! Server binaries from Debian suites this OS does not use (bookworm-backports, trixie): the
//! packages are fetched with a private apt configuration whose lists, state and downloads all
//! live in a folder of the cache, from the Debian mirror this machine already uses, and unpacked
//! with `dpkg-deb -x`. Nothing is installed and the system's apt state is never touched.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The mirror used when the system's sources name none (a non-Debian apt setup).
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The Debian mirror of the system's sources: the first `deb` entry that is not the security
/// archive, and the keyring it is signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub uri: String,
    pub keyring: String,
}

pub fn system_mirror() -> Mirror {
    let mut texts = vec![];
    if let Ok(t) = std::fs::read_to_string("/etc/apt/sources.list") {
        texts.push(t);
    }
    let mut parts: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    parts.sort();
    for p in parts {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext == "list" || ext == "sources" {
            if let Ok(t) = std::fs::read_to_string(&p) {
                texts.push(t);
            }
        }
    }
    texts
        .iter()
        .find_map(|t| mirror_in(t))
        .unwrap_or_else(|| Mirror {
            uri: DEFAULT_MIRROR.into(),
            keyring: DEFAULT_KEYRING.into(),
        })
}

/// A Debian main-archive entry in one sources file, one-line (`deb [opts] URI SUITE ...`) or
/// deb822 (`URIs:` / `Suites:` / `Signed-By:` stanzas).
fn mirror_in(text: &str) -> Option<Mirror> {
    let is_debian = |uri: &str| uri.trim_end_matches('/').ends_with("/debian");
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let mut keyring = DEFAULT_KEYRING.to_string();
        let mut rest = rest.trim();
        if let Some(opts) = rest.strip_prefix('[') {
            let (opts, after) = opts.split_once(']')?;
            for opt in opts.split_whitespace() {
                if let Some(k) = opt.strip_prefix("signed-by=") {
                    keyring = k.to_string();
                }
            }
            rest = after.trim();
        }
        if let Some(uri) = rest.split_whitespace().next().filter(|u| is_debian(u)) {
            return Some(Mirror {
                uri: uri.to_string(),
                keyring,
            });
        }
    }
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let is_deb = field("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        let uri = field("URIs").and_then(|u| {
            u.split_whitespace()
                .find(|u| is_debian(u))
                .map(str::to_string)
        });
        if let (true, Some(uri)) = (is_deb, uri) {
            return Some(Mirror {
                uri,
                keyring: field("Signed-By").unwrap_or_else(|| DEFAULT_KEYRING.into()),
            });
        }
    }
    None
}

/// Fetch `package/suite` packages into `work` with a private apt configuration and unpack them
/// all into `root`.
pub fn fetch_and_unpack(packages: &[&str], work: &Path, root: &Path) -> Result<(), String> {
    let mirror = system_mirror();
    let suites: BTreeSet<&str> = packages
        .iter()
        .filter_map(|p| p.split_once('/').map(|(_, s)| s))
        .collect();
    let apt = work.join("apt");
    for dir in [
        "etc/sources.list.d",
        "etc/preferences.d",
        "state/lists/partial",
        "cache/archives/partial",
        "debs",
    ] {
        std::fs::create_dir_all(apt.join(dir))
            .map_err(|e| format!("cannot create {}: {e}", apt.join(dir).display()))?;
    }
    let sources: String = suites
        .iter()
        .map(|s| {
            format!(
                "deb [signed-by={}] {} {s} main\n",
                mirror.keyring, mirror.uri
            )
        })
        .collect();
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(apt.join("etc/sources.list"), &sources)?;
    write(apt.join("state/status"), "")?;
    let p = |rel: &str| apt.join(rel).display().to_string();
    let options = [
        format!("Dir::Etc::SourceList={}", p("etc/sources.list")),
        format!("Dir::Etc::SourceParts={}", p("etc/sources.list.d")),
        format!("Dir::Etc::Preferences={}", p("etc/preferences")),
        format!("Dir::Etc::PreferencesParts={}", p("etc/preferences.d")),
        format!("Dir::State={}", p("state")),
        format!("Dir::State::status={}", p("state/status")),
        format!("Dir::Cache={}", p("cache")),
        // The private state has no lock to share with the system's apt.
        "Debug::NoLocking=1".into(),
        // Only the package lists are needed, not translations or AppStream metadata.
        "Acquire::Languages=none".into(),
        "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".into(),
        "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".into(),
        "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".into(),
        // Downloads land in the cache, which apt's sandbox user may not be able to write.
        "APT::Sandbox::User=root".into(),
    ];
    let apt_get = |args: &[&str], cwd: &Path| -> Result<(), String> {
        let mut cmd = Command::new("apt-get");
        cmd.arg("-q");
        for o in &options {
            cmd.arg("-o").arg(o);
        }
        let out = cmd
            .args(args)
            .current_dir(cwd)
            .output()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("E:")).collect();
        Err(format!(
            "`apt-get {}` (private config, mirror {}) failed: {}",
            args.join(" "),
            mirror.uri,
            if errors.is_empty() {
                stderr.lines().last().unwrap_or("").to_string()
            } else {
                errors.join(" ")
            }
        ))
    };
    apt_get(&["update"], &apt)?;
    let mut args = vec!["download"];
    args.extend(packages);
    let debs = apt.join("debs");
    apt_get(&args, &debs)?;
    std::fs::create_dir_all(root).map_err(|e| e.to_string())?;
    let mut found = 0;
    for deb in std::fs::read_dir(&debs)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        if deb.path().extension().is_some_and(|e| e == "deb") {
            let out = Command::new("dpkg-deb")
                .arg("-x")
                .arg(deb.path())
                .arg(root)
                .output()
                .map_err(|e| format!("cannot run dpkg-deb: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "dpkg-deb -x {}: {}",
                    deb.path().display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            found += 1;
        }
    }
    if found != packages.len() {
        return Err(format!(
            "apt-get download fetched {found} of {} packages",
            packages.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_comes_from_either_sources_format() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\
                      Components: main\nSigned-By: /k.gpg\n\n\
                      Types: deb\nURIs: http://mirror.example/debian-security\n";
        assert_eq!(
            mirror_in(deb822),
            Some(Mirror {
                uri: "http://mirror.example/debian".into(),
                keyring: "/k.gpg".into()
            })
        );
        let one_line = "# x\ndeb http://security.example/debian-security bookworm-security main\n\
                        deb [arch=amd64 signed-by=/s.gpg] http://m.example/debian/ bookworm main\n";
        assert_eq!(
            mirror_in(one_line),
            Some(Mirror {
                uri: "http://m.example/debian/".into(),
                keyring: "/s.gpg".into()
            })
        );
        assert_eq!(
            mirror_in("deb https://packages.cloud.google.com/apt x main\n"),
            None
        );
    }
}
