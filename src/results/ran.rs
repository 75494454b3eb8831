//! How a cell's servers ran, as its result records it: which runtime, what identifies each
//! server there (PID, container, image), and each node of a deployment in its role. The runtimes
//! in `server/` fill these in; reports read them from the result.

use serde::{Deserialize, Serialize};

/// Which runtime ran a server and what identifies it there, for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeIdentity {
    /// `process` or `container`.
    pub runtime: String,
    /// The server's PID (processes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Short container id (containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Image tag, e.g. `cachegate/redis:7.4.1` (containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image id (`sha256:...`), so a report says exactly what ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Network path from the harness to the server: `host` or `bridge` (containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

impl RuntimeIdentity {
    /// One line for reports: `process (pid 123)` or
    /// `container 0123abcd4567, cachegate/redis:7.4.1 (sha256:5ccd3700f2dc), host network`.
    pub fn describe(&self) -> String {
        let short = |id: &str| -> String {
            let hex = id.trim_start_matches("sha256:");
            format!("sha256:{}", &hex[..hex.len().min(12)])
        };
        match self.runtime.as_str() {
            "container" => format!(
                "container {}, {} ({}), {} network",
                self.container.as_deref().unwrap_or("?"),
                self.image.as_deref().unwrap_or("?"),
                self.image_id.as_deref().map_or("?".into(), short),
                self.network.as_deref().unwrap_or("?")
            ),
            "" => String::new(),
            other => match self.pid {
                Some(pid) => format!("{other} (pid {pid})"),
                None => other.to_string(),
            },
        }
    }
}

/// A node as the report shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub role: String,
    /// The role the server reported at the end of the cell (a promoted replica says primary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_at_end: Option<String>,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u8>,
    pub identity: RuntimeIdentity,
    pub start_ms: f64,
    /// The log file in the run folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}
