//! ACL users (`[[server.users]]`), beside or instead of `requirepass`, and the cell's secrets.
//!
//! A matrix's users are written into the server config as `user NAME on >PASSWORD RULES`. The
//! harness never borrows one of them (a user may lack the commands it needs, which is often the
//! point of the cell): when users are set it logs in as its own `cachegate-harness` user, whose
//! password is random per cell and never written anywhere but the 0600 config. The `default`
//! user stays what `requirepass` makes it (no password when unset, as Redis itself does); a
//! matrix turns it off with a user named `default` and rules `off`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::tls::TlsMaterial;

/// The harness's own ACL user, when the matrix defines users.
pub const HARNESS_USER: &str = "cachegate-harness";

/// One `[[server.users]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AclUser {
    /// The user name, as in `AUTH name password` and `redis://name:password@host`.
    pub name: String,
    /// Its password (redacted in every output).
    pub password: String,
    /// ACL rules after `on >password`, e.g. `~* +@all` (the default) or
    /// `~* +@all -expire -setex` for a user that cannot set expiries.
    #[serde(default = "all_commands")]
    pub rules: String,
}

fn all_commands() -> String {
    "~* +@all".to_string()
}

impl AclUser {
    /// What is wrong with this user, if anything (names and passwords go on one config line).
    pub fn problem(&self) -> Option<String> {
        if self.name.is_empty() || self.name.chars().any(|c| c.is_whitespace() || c == '"') {
            return Some(format!(
                "user name `{}` must be non-empty, without spaces or quotes",
                self.name
            ));
        }
        if self.name == HARNESS_USER {
            return Some(format!("user name `{HARNESS_USER}` is the harness's own"));
        }
        if self.password.is_empty() && self.name != "default" {
            return Some(format!("user `{}` needs a password", self.name));
        }
        if self.rules.contains(['\n', '\r', '"']) {
            return Some(format!(
                "the rules of user `{}` must be one line without quotes",
                self.name
            ));
        }
        None
    }

    /// The config line. The password is one quoted argument; the rules are split like the
    /// server splits them.
    pub fn config_line(&self, quote: impl Fn(&str) -> String) -> String {
        let password = if self.password.is_empty() {
            String::new()
        } else {
            format!(" {}", quote(&format!(">{}", self.password)))
        };
        format!("user {} on{password} {}", self.name, self.rules)
            .trim_end()
            .to_string()
    }
}

/// What a cell's server needs that must never be recorded: the TLS certificates and the
/// harness's ACL password. Made when the cell starts (`Secrets::for_cell`), shared by every clone
/// of its spec, and removed with the last of them.
#[derive(Debug)]
pub struct Secrets {
    pub tls: Option<Arc<TlsMaterial>>,
    /// The `cachegate-harness` user's password (set when the matrix defines users).
    pub harness_password: Option<String>,
}

impl PartialEq for Secrets {
    fn eq(&self, other: &Self) -> bool {
        self.tls == other.tls && self.harness_password == other.harness_password
    }
}
impl Eq for Secrets {}

impl Secrets {
    pub fn for_cell(
        tls: Option<&super::tls::TlsOptions>,
        users: &[AclUser],
    ) -> Result<Arc<Secrets>, String> {
        let tls = tls.map(TlsMaterial::generate).transpose()?;
        let harness_password = (!users.is_empty()).then(random_password);
        Ok(Arc::new(Secrets {
            tls,
            harness_password,
        }))
    }
}

/// 32 random alphanumerics.
fn random_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}
