//! What server to run and how it is configured: `family@version` plus persistence, memory policy
//! and auth. Parsed from matrix files, so every `FromStr` error reads well on its own.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Redis,
    Valkey,
    /// memcached: no persistence, no AUTH in its text protocol, started with command-line
    /// options instead of a config file.
    Memcached,
    /// No cache server at all (`server = ["none"]`): baseline cells of the app with a session
    /// engine that needs none (Django's `db` or `file`).
    #[serde(rename = "none")]
    NoServer,
}

impl Family {
    /// The families of real servers.
    pub const ALL: [Family; 3] = [Family::Redis, Family::Valkey, Family::Memcached];

    pub fn name(self) -> &'static str {
        match self {
            Family::Redis => "redis",
            Family::Valkey => "valkey",
            Family::Memcached => "memcached",
            Family::NoServer => "none",
        }
    }

    /// The server binary's file name.
    pub fn binary_name(self) -> &'static str {
        match self {
            Family::Redis => "redis-server",
            Family::Valkey => "valkey-server",
            Family::Memcached => "memcached",
            Family::NoServer => "",
        }
    }

    /// The protocol its clients speak.
    pub fn protocol(self) -> Protocol {
        match self {
            Family::Memcached => Protocol::Memcache,
            _ => Protocol::Resp,
        }
    }

    /// Does the server write anything to disk (RDB, AOF)? memcached keeps everything in memory.
    pub fn persists(self) -> bool {
        matches!(self, Family::Redis | Family::Valkey)
    }
}

/// The wire protocol of a server family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Redis and Valkey: RESP.
    Resp,
    /// memcached's text protocol.
    Memcache,
}

impl Family {
    /// A client URL for the server at `port`, as Django settings' `{server}` takes it: a redis
    /// URL, or memcached's `HOST:PORT`.
    pub fn url(self, port: u16, password: Option<&str>) -> String {
        match (self, password) {
            (Family::Memcached, _) => format!("127.0.0.1:{port}"),
            (Family::NoServer, _) => String::new(),
            (_, Some(pw)) => format!("redis://:{pw}@127.0.0.1:{port}/"),
            (_, None) => format!("redis://127.0.0.1:{port}/"),
        }
    }
}

/// A requested server, `family@version`, where version may be partial: `redis@7` means the newest
/// 7.x the catalog knows, `redis@7.4` the newest 7.4.x, `redis@7.4.1` exactly that.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerRef {
    pub family: Family,
    pub version: Vec<u32>,
}

impl ServerRef {
    /// Does a full version (e.g. `[7, 4, 1]`) satisfy this request?
    pub fn matches(&self, full: &[u32]) -> bool {
        full.len() >= self.version.len() && full[..self.version.len()] == self.version[..]
    }
}

impl ServerRef {
    /// The server axis value `none`: no cache server.
    pub fn no_server() -> Self {
        ServerRef {
            family: Family::NoServer,
            version: vec![],
        }
    }
}

impl fmt::Display for ServerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.family {
            Family::NoServer => f.write_str("none"),
            _ => write!(f, "{}@{}", self.family.name(), join_version(&self.version)),
        }
    }
}

pub fn join_version(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

pub fn parse_version(s: &str) -> Option<Vec<u32>> {
    let parts: Option<Vec<u32>> = s.split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| !p.is_empty() && p.len() <= 3)
}

impl FromStr for ServerRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "none" {
            return Ok(ServerRef::no_server());
        }
        let (family, version) = s.split_once('@').ok_or_else(|| {
            format!(
                "server `{s}` must be written family@version, e.g. redis@7.4, or `none` for \
                 no cache server"
            )
        })?;
        let family = match family {
            "redis" => Family::Redis,
            "valkey" => Family::Valkey,
            "memcached" => Family::Memcached,
            other => {
                return Err(format!(
                    "unknown server family `{other}` in `{s}`; known families: redis, valkey, \
                     memcached (or `none` for no server)"
                ))
            }
        };
        let version = parse_version(version).ok_or_else(|| {
            format!("bad version `{version}` in `{s}`: expected numbers like 7, 7.4 or 7.4.1")
        })?;
        Ok(ServerRef { family, version })
    }
}

impl schemars::JsonSchema for ServerRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Server".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let families: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
        crate::config::schema::pattern_string(
            &format!(r"^(none|({})@[0-9]+(\.[0-9]+){{0,2}})$", families.join("|")),
            "family@version, the version partial or full (redis@7 is the newest 7.x known, \
             redis@7.4.1 exactly that), or `none` for no cache server.",
        )
    }
}

impl TryFrom<String> for ServerRef {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<ServerRef> for String {
    fn from(r: ServerRef) -> String {
        r.to_string()
    }
}

/// When the append-only file is fsynced (`appendfsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    Always,
    Everysec,
    No,
}

impl Fsync {
    fn name(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
            Fsync::No => "no",
        }
    }
}

/// An RDB save point: snapshot after `seconds` if at least `changes` keys changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SavePoint {
    pub seconds: u64,
    pub changes: u64,
}

/// Persistence mode, written in matrix files as:
/// `none`, `rdb` (save 60 1), `rdb:SECS/CHANGES[,SECS/CHANGES...]`, `aof-always`, `aof-everysec`,
/// `aof-no`, `rdb+aof-everysec` (also `rdb:1/1+aof-always` etc.).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Persistence {
    pub save_points: Vec<SavePoint>,
    pub aof: Option<Fsync>,
}

impl Persistence {
    pub fn none() -> Self {
        Persistence {
            save_points: vec![],
            aof: None,
        }
    }
}

const DEFAULT_SAVE: SavePoint = SavePoint {
    seconds: 60,
    changes: 1,
};

impl FromStr for Persistence {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "bad persistence `{s}`: {why}; expected none, rdb, rdb:SECS/CHANGES[,...], \
                 aof-always, aof-everysec, aof-no, or rdb[...]+aof-FSYNC"
            )
        };
        if s == "none" {
            return Ok(Persistence::none());
        }
        let mut out = Persistence::none();
        for part in s.split('+') {
            if let Some(fsync) = part.strip_prefix("aof-") {
                if out.aof.is_some() {
                    return Err(bad("aof given twice"));
                }
                out.aof = Some(match fsync {
                    "always" => Fsync::Always,
                    "everysec" => Fsync::Everysec,
                    "no" => Fsync::No,
                    _ => return Err(bad(&format!("unknown appendfsync `{fsync}`"))),
                });
            } else if (part == "rdb" || part.starts_with("rdb:")) && !out.save_points.is_empty() {
                // `rdb+aof-everysec+rdb` used to keep one silently.
                return Err(bad("rdb given twice"));
            } else if part == "rdb" {
                out.save_points = vec![DEFAULT_SAVE];
            } else if let Some(points) = part.strip_prefix("rdb:") {
                for point in points.split(',') {
                    let (secs, changes) = point
                        .split_once('/')
                        .ok_or_else(|| bad(&format!("save point `{point}` is not SECS/CHANGES")))?;
                    let num = |v: &str| {
                        v.parse::<u64>()
                            .map_err(|_| bad(&format!("`{v}` in save point is not a number")))
                    };
                    let point = SavePoint {
                        seconds: num(secs)?,
                        changes: num(changes)?,
                    };
                    if point.seconds == 0 || point.changes == 0 {
                        // The server refuses to start with such a save line.
                        return Err(bad(&format!(
                            "save point `{secs}/{changes}` needs at least 1 second and 1 change"
                        )));
                    }
                    out.save_points.push(point);
                }
            } else {
                return Err(bad(&format!("unknown part `{part}`")));
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Persistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![];
        if self.save_points == [DEFAULT_SAVE] {
            parts.push("rdb".to_string());
        } else if !self.save_points.is_empty() {
            let points: Vec<String> = self
                .save_points
                .iter()
                .map(|p| format!("{}/{}", p.seconds, p.changes))
                .collect();
            parts.push(format!("rdb:{}", points.join(",")));
        }
        if let Some(fsync) = self.aof {
            parts.push(format!("aof-{}", fsync.name()));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join("+"))
        }
    }
}

impl schemars::JsonSchema for Persistence {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Persistence".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let count = "0*[1-9][0-9]*";
        let rdb = format!("rdb(:{count}/{count}(,{count}/{count})*)?");
        let aof = "aof-(always|everysec|no)";
        crate::config::schema::pattern_string(
            &format!(r"^(none|{rdb}|{aof}|{rdb}\+{aof}|{aof}\+{rdb})$"),
            "none, rdb (save 60 1), rdb:SECS/CHANGES[,SECS/CHANGES...], aof-always, \
             aof-everysec, aof-no, or an rdb and an aof part joined by `+`.",
        )
    }
}

impl TryFrom<String> for Persistence {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Persistence> for String {
    fn from(p: Persistence) -> String {
        p.to_string()
    }
}

/// Settings applied to every server of a matrix (and recorded with each result).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// `maxmemory`, as the server accepts it (e.g. "64mb").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxmemory: Option<String>,
    /// `maxmemory-policy`, e.g. allkeys-lru, volatile-lru, noeviction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxmemory_policy: Option<String>,
    /// `requirepass`; clients of the harness authenticate with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirepass: Option<String>,
    /// ACL users (Redis 6+, Valkey), beside or instead of `requirepass`:
    /// `[[server.users]] name = "app", password = "...", rules = "~* +@all -flushall"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<super::acl::AclUser>,
    /// How the certificates of cells on the `tls` transport are made.
    #[serde(default, skip_serializing_if = "super::tls::TlsOptions::is_default")]
    pub tls: super::tls::TlsOptions,
    /// Extra config lines passed through verbatim, e.g. ["io-threads 2"].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
}

/// Everything needed to start one server: which, and how configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSpec {
    pub server: ServerRef,
    pub persistence: Persistence,
    #[serde(flatten)]
    pub settings: ServerSettings,
    /// A data server (the default) or a Sentinel (the same binary with `--sentinel`).
    #[serde(default, skip_serializing_if = "ServerMode::is_server")]
    pub mode: ServerMode,
    /// The cell's certificates and the harness's ACL password: made when the cell starts, never
    /// recorded.
    #[serde(skip)]
    pub secrets: Option<std::sync::Arc<super::acl::Secrets>>,
}

/// How the binary runs: as a data server or as a Sentinel watching one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerMode {
    #[default]
    Server,
    Sentinel,
}

impl ServerMode {
    pub fn is_server(&self) -> bool {
        *self == ServerMode::Server
    }

    /// Arguments after the config file path on the server's command line.
    pub fn args(&self) -> &'static [&'static str] {
        match self {
            ServerMode::Server => &[],
            ServerMode::Sentinel => &["--sentinel"],
        }
    }
}

impl ServerSpec {
    fn harness_password(&self) -> Option<&str> {
        self.secrets.as_ref()?.harness_password.as_deref()
    }

    /// The cell's certificates, on the `tls` transport.
    pub fn tls(&self) -> Option<&std::sync::Arc<super::tls::TlsMaterial>> {
        self.secrets.as_ref()?.tls.as_ref()
    }

    /// How the harness connects to the server at `port`: over TLS on the `tls` transport, as its
    /// own ACL user when the matrix defines users, else with `requirepass`.
    pub fn harness_endpoint(&self, port: u16) -> super::runtime::Endpoint {
        let (user, password) = match self.harness_password() {
            Some(pw) => (
                Some(super::acl::HARNESS_USER.to_string()),
                Some(pw.to_string()),
            ),
            None => (None, self.settings.requirepass.clone()),
        };
        super::runtime::Endpoint {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            user,
            password,
            protocol: self.server.family.protocol(),
            tls: self.tls().cloned(),
        }
    }

    /// The server's URL for clients (`{server}`): `rediss://` on the `tls` transport, with the
    /// `requirepass` password when one is set.
    pub fn client_url(&self, port: u16) -> String {
        let url = self
            .server
            .family
            .url(port, self.settings.requirepass.as_deref());
        match self.tls() {
            Some(_) => url.replacen("redis://", "rediss://", 1),
            None => url,
        }
    }

    /// The URL logging in as the ACL user `name` (`{user:NAME}`), if the matrix defines it.
    pub fn user_url(&self, port: u16, name: &str) -> Option<String> {
        let user = self.settings.users.iter().find(|u| u.name == name)?;
        let scheme = if self.tls().is_some() {
            "rediss"
        } else {
            "redis"
        };
        let escape = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        Some(format!(
            "{scheme}://{}:{}@127.0.0.1:{port}/",
            escape(&user.name),
            escape(&user.password)
        ))
    }

    /// Does this server run in cluster mode (so it needs its bus port free as well)?
    pub fn is_cluster_node(&self) -> bool {
        self.settings
            .extra
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["cluster-enabled", "yes"])
    }

    /// The server's config file text (the same format for every redis and valkey version),
    /// listening on 127.0.0.1.
    pub fn config_text(&self, port: u16, dir: &std::path::Path) -> String {
        self.config_text_bound("127.0.0.1", port, dir)
    }

    /// memcached's command line, listening on `bind:port`: it has no config file. `maxmemory`
    /// becomes `-m` (megabytes); `extra` lines are split into further options. memcached refuses
    /// to run `as_root` unless told which user to be (`-u root`).
    pub fn memcached_args(&self, bind: &str, port: u16, as_root: bool) -> Vec<String> {
        let mut args: Vec<String> = ["-l", bind, "-p", &port.to_string(), "-U", "0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some(mb) = self.settings.maxmemory.as_deref().and_then(megabytes) {
            args.extend(["-m".to_string(), mb.to_string()]);
        }
        if as_root {
            args.extend(["-u".to_string(), "root".to_string()]);
        }
        for line in &self.settings.extra {
            args.extend(line.split_whitespace().map(str::to_string));
        }
        args
    }

    /// The config text, listening on `bind` (a container's own interface, for bridge networks).
    pub fn config_text_bound(&self, bind: &str, port: u16, dir: &std::path::Path) -> String {
        let tls = self.secrets.as_ref().and_then(|s| s.tls.as_ref());
        let mut lines = match tls {
            Some(material) => material.server_config_lines(port),
            None => vec![format!("port {port}")],
        };
        lines.extend([
            format!("bind {bind}"),
            "daemonize no".to_string(),
            format!("dir {}", quote_config(&dir.display().to_string())),
            "logfile \"\"".to_string(),
        ]);
        if self.persistence.save_points.is_empty() {
            lines.push("save \"\"".to_string());
        }
        for p in &self.persistence.save_points {
            lines.push(format!("save {} {}", p.seconds, p.changes));
        }
        match self.persistence.aof {
            Some(fsync) => {
                lines.push("appendonly yes".to_string());
                lines.push(format!("appendfsync {}", fsync.name()));
            }
            None => lines.push("appendonly no".to_string()),
        }
        let s = &self.settings;
        if let Some(m) = &s.maxmemory {
            lines.push(format!("maxmemory {m}"));
        }
        if let Some(p) = &s.maxmemory_policy {
            lines.push(format!("maxmemory-policy {p}"));
        }
        if let Some(pw) = &s.requirepass {
            lines.push(format!("requirepass {}", quote_config(pw)));
        }
        for user in &s.users {
            lines.push(user.config_line(quote_config));
        }
        if let Some(pw) = self.harness_password() {
            lines.push(format!(
                "user {} on {} ~* +@all",
                super::acl::HARNESS_USER,
                quote_config(&format!(">{pw}"))
            ));
        }
        lines.extend(s.extra.iter().cloned());
        lines.join("\n") + "\n"
    }
}

/// A memory size as the servers write it (`64mb`, `1gb`, `512m`, bytes) in whole megabytes.
pub fn megabytes(size: &str) -> Option<u64> {
    let s = size.trim().to_ascii_lowercase();
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let n: u64 = digits.parse().ok()?;
    let unit = &s[digits.len()..];
    let bytes = match unit {
        "" | "b" => n,
        "k" | "kb" => n * 1024,
        "m" | "mb" => n * 1024 * 1024,
        "g" | "gb" => n * 1024 * 1024 * 1024,
        _ => return None,
    };
    Some((bytes / (1024 * 1024)).max(1))
}

/// A value as the config parser (`sdssplitargs`) reads it back unchanged: inside double quotes,
/// where `\\`, `\"` and `\xHH` are escapes, so backslashes and quotes are escaped and every
/// other byte is literal.
fn quote_config(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_are_quoted_so_they_read_back_unchanged() {
        assert_eq!(quote_config("plain"), "\"plain\"");
        assert_eq!(quote_config(r#"a"b\x41c"#), r#""a\"b\\x41c""#);
    }

    #[test]
    fn server_refs_parse_and_match() {
        let r: ServerRef = "redis@7.4".parse().unwrap();
        assert!(r.matches(&[7, 4, 1]));
        assert!(!r.matches(&[7, 0, 15]));
        assert_eq!(r.to_string(), "redis@7.4");
        assert!("redis@seven"
            .parse::<ServerRef>()
            .unwrap_err()
            .contains("bad version"));
        assert!("memcache@1"
            .parse::<ServerRef>()
            .unwrap_err()
            .contains("unknown server family"));
        assert!("redis".parse::<ServerRef>().is_err());
        let none: ServerRef = "none".parse().unwrap();
        assert_eq!(none.family, Family::NoServer);
        assert_eq!(none.to_string(), "none");
        assert!("none@1".parse::<ServerRef>().is_err());
        assert_eq!(
            "memcached@1.6".parse::<ServerRef>().unwrap().family,
            Family::Memcached
        );
        assert_eq!(megabytes("64mb"), Some(64));
        assert_eq!(megabytes("1gb"), Some(1024));
        assert_eq!(megabytes("lots"), None);
    }

    #[test]
    fn persistence_round_trips() {
        for s in [
            "none",
            "rdb",
            "rdb:1/1,60/100",
            "aof-always",
            "rdb+aof-everysec",
            "rdb:5/1+aof-no",
        ] {
            let p: Persistence = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
        assert!("aof-sometimes".parse::<Persistence>().is_err());
        assert!("rdb:1".parse::<Persistence>().is_err());
    }

    #[test]
    fn config_disables_rdb_when_no_save_points() {
        let spec = ServerSpec {
            server: "redis@7".parse().unwrap(),
            persistence: Persistence::none(),
            settings: ServerSettings::default(),
            mode: ServerMode::Server,
            secrets: None,
        };
        let text = spec.config_text(1234, std::path::Path::new("/tmp/x"));
        assert!(text.contains("save \"\"\n"));
        assert!(text.contains("appendonly no\n"));
        assert!(text.contains("bind 127.0.0.1\n"));
    }
}
