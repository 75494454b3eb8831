//! The web app under test: the bundled reference Django app run on a stack (`app`), a team's own
//! Django project run the same way (`project`), or an external URL. `protocol` describes how the
//! flow signs in on each.

pub mod app;
pub mod app_files;
pub mod exceptions;
pub mod project;
pub mod protocol;

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

/// `[target]` in a matrix file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    /// Bundled app: gunicorn worker processes (default 2).
    pub workers: Option<NonZeroU32>,
    /// Bundled app: threads per worker (default 1: gunicorn's sync worker, which closes every
    /// connection after its response). Above 1, gunicorn's gthread worker, which keeps client
    /// connections alive as most production front ends do.
    pub threads: Option<NonZeroU32>,
    /// An external app instead of the bundled one (no stack is provisioned then). Its cache and
    /// session configuration is the app's own; a cell's server is still started for it if the
    /// app is pointed at it.
    pub url: Option<String>,
    /// An external cache server (`127.0.0.1:PORT`) loaded instead of starting one: cache-ops and
    /// login-flow only (it is never stopped or restarted), e.g. for `run --generator`, where
    /// several generator hosts load one server. The server axis still names its family and
    /// version; the version it reports is recorded.
    pub server: Option<String>,
    /// A team's own Django project instead of the bundled app: its folder (with manage.py),
    /// relative to the matrix file. It is served like the bundled app, on each cell's stack
    /// (the project's requirements with the stack's pins on top) and settings, and never written
    /// to.
    pub project: Option<std::path::PathBuf>,
    /// The project's settings module, e.g. "mysite.settings" (required with `project`).
    pub settings: Option<String>,
    /// The project's WSGI application (default: the settings' package + ".wsgi:application").
    pub wsgi: Option<String>,
    /// The project's requirements file (or a pip-compile lock), relative to the project
    /// (default: requirements.txt when there is one).
    pub requirements: Option<std::path::PathBuf>,
    /// How the flow signs in: `api` (the bundled app's JSON endpoints, the default) or `form`
    /// (Django's LoginView/LogoutView with HTML forms; accounts are created up front).
    #[serde(default)]
    pub login: protocol::LoginKind,
    /// What the authenticated page (`paths.me`) shows when signed in; `{user}` is the login
    /// (default: the login itself).
    pub me_shows: Option<String>,
    /// `login = "form"`: accounts created up front through the project's user model (default
    /// 10); flows and sessions sign in with them in turn.
    pub accounts: Option<NonZeroU32>,
    /// `django-tests`: test labels passed to `manage.py test` (default: the whole suite).
    #[serde(default)]
    pub test_labels: Vec<String>,
    #[serde(default)]
    pub paths: Paths,
    #[serde(default)]
    pub fields: Fields,
    /// Request bodies as `form` (default) or `json`.
    #[serde(default)]
    pub format: BodyFormat,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    #[default]
    Form,
    Json,
}

/// Paths of the flow's endpoints. `csrf = ""` skips fetching a CSRF token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Paths {
    pub csrf: String,
    pub register: String,
    pub login: String,
    pub me: String,
    pub logout: String,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            csrf: "/csrf/".into(),
            register: "/register/".into(),
            login: "/login/".into(),
            me: "/me/".into(),
            logout: "/logout/".into(),
        }
    }
}

/// Field names in request bodies and the CSRF exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Fields {
    pub username: String,
    pub password: String,
    /// JSON key holding the CSRF token in responses of `paths.csrf`, login and register.
    pub csrf_token: String,
    /// Header the token is sent back in.
    pub csrf_header: String,
}

impl Default for Fields {
    fn default() -> Self {
        Fields {
            username: "username".into(),
            password: "password".into(),
            csrf_token: "csrftoken".into(),
            csrf_header: "X-CSRFToken".into(),
        }
    }
}

/// The cell's Django settings as JSON for the app, with the deployment's addresses in place of
/// placeholders. In any string: `{server}` (or `{primary}`) is the primary's redis URL, `{port}`
/// its port, `{replica}` / `{replica:N}` the first / N-th replica's URL, `{sentinel_service}` the
/// name the Sentinels know the primary by. A string that is only `{replicas}`, `{sentinels}` or
/// `{cluster}` becomes a list: the replicas' URLs, the Sentinels as `["127.0.0.1", port]` pairs
/// (django-redis's `SENTINELS`), every cluster node's URL. A `CACHES` alias without `LOCATION`
/// gets the primary's URL. A placeholder naming a node the topology lacks is an error. On the
/// `tls` transport the URLs are `rediss://` and `{ca_cert}`, `{client_cert}`, `{client_key}` and
/// `{other_ca_cert}` (a CA that signed nothing) are the cell's certificate files; `{user:NAME}`
/// is the primary's URL logging in as the `[[server.users]]` user NAME.
pub fn django_settings(
    table: &toml::Table,
    at: &crate::server::deployment::Addresses,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    fn list(at: &crate::server::deployment::Addresses, name: &str) -> Option<Value> {
        Some(match name {
            "{replicas}" => Value::from(at.replicas.clone()),
            "{sentinels}" => Value::from(
                at.sentinels
                    .iter()
                    .map(|p| Value::from(vec![Value::from("127.0.0.1"), Value::from(*p)]))
                    .collect::<Vec<_>>(),
            ),
            "{cluster}" => Value::from(at.cluster.clone()),
            _ => return None,
        })
    }
    fn text(s: &str, at: &crate::server::deployment::Addresses) -> Result<String, String> {
        let mut out = s
            .replace("{server}", &at.primary)
            .replace("{primary}", &at.primary)
            .replace("{port}", &at.port.to_string())
            .replace(
                "{sentinel_service}",
                crate::server::topology::SENTINEL_SERVICE,
            );
        for (name, path) in &at.tls_files {
            out = out.replace(name.as_str(), path);
        }
        while let Some(start) = out.find("{user:") {
            let end = start
                + out[start..]
                    .find('}')
                    .ok_or_else(|| format!("unclosed placeholder in {s:?}"))?;
            let name = &out[start + "{user:".len()..end];
            let url = at.users.get(name).ok_or_else(|| {
                format!("{{user:{name}}} in {s:?}: no [[server.users]] user is named `{name}`")
            })?;
            out.replace_range(start..=end, &url.clone());
        }
        for (name, _) in crate::server::tls::FILE_PLACEHOLDERS {
            if out.contains(name) {
                return Err(format!(
                    "{name} in {s:?}: the cell's transport is not tls, so it has no certificates"
                ));
            }
        }
        while let Some(start) = out.find("{replica") {
            let end = start
                + out[start..]
                    .find('}')
                    .ok_or_else(|| format!("unclosed placeholder in {s:?}"))?;
            let n = match &out[start + 1..end] {
                "replica" => 1,
                other => other
                    .strip_prefix("replica:")
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| format!("unknown placeholder {} in {s:?}", &out[start..=end]))?,
            };
            let url = n
                .checked_sub(1)
                .and_then(|i| at.replicas.get(i))
                .ok_or_else(|| {
                    format!(
                        "{} in {s:?}: the cell's topology has {} replica(s)",
                        &out[start..=end],
                        at.replicas.len()
                    )
                })?;
            out.replace_range(start..=end, url);
        }
        for whole in ["{replicas}", "{sentinels}", "{cluster}"] {
            if out.contains(whole) {
                return Err(format!(
                    "{whole} stands for a list: it must be the whole string, not part of {s:?}"
                ));
            }
        }
        Ok(out)
    }
    fn walk(v: &mut Value, at: &crate::server::deployment::Addresses) -> Result<(), String> {
        match v {
            Value::String(s) => match list(at, s) {
                Some(Value::Array(items)) if items.is_empty() => {
                    return Err(format!(
                        "{s} is empty: the cell's topology has no such nodes"
                    ))
                }
                Some(items) => *v = items,
                None => *s = text(s, at)?,
            },
            Value::Array(a) => a.iter_mut().try_for_each(|x| walk(x, at))?,
            Value::Object(o) => o.values_mut().try_for_each(|x| walk(x, at))?,
            _ => {}
        }
        Ok(())
    }
    let mut v = serde_json::to_value(table).expect("TOML tables convert to JSON");
    walk(&mut v, at).map_err(|e| format!("settings: {e}"))?;
    if let Some(caches) = v.get_mut("CACHES").and_then(|c| c.as_object_mut()) {
        for alias in caches.values_mut().filter_map(|a| a.as_object_mut()) {
            alias
                .entry("LOCATION")
                .or_insert_with(|| at.primary.clone().into());
        }
    }
    Ok(v)
}

impl TargetSection {
    /// Which flow step a request path belongs to, for placing app exceptions.
    pub fn step_of_path(&self, path: &str) -> &'static str {
        let p = &self.paths;
        match path {
            x if x == p.register => "register",
            x if x == p.login => "login",
            x if x == p.me => "me",
            x if x == p.logout => "logout",
            x if x == p.csrf => "csrf",
            _ => "other",
        }
    }
}
