//! The web app under test: the bundled reference Django app run on a stack (`app`), or an
//! external URL. `endpoints` describes the flow's paths and fields for either.

pub mod app;
pub mod app_files;
pub mod exceptions;

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

/// `[target]` in a matrix file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default)]
    pub paths: Paths,
    #[serde(default)]
    pub fields: Fields,
    /// Request bodies as `form` (default) or `json`.
    #[serde(default)]
    pub format: BodyFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    #[default]
    Form,
    Json,
}

/// Paths of the flow's endpoints. `csrf = ""` skips fetching a CSRF token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The cell's Django settings as JSON for the app: `{server}` in any string becomes the cell's
/// redis URL and `{port}` its port; a `CACHES` alias without `LOCATION` gets the server URL.
pub fn django_settings(table: &toml::Table, server_url: &str, port: u16) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value, url: &str, port: &str) {
        match v {
            serde_json::Value::String(s) => *s = s.replace("{server}", url).replace("{port}", port),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, url, port)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| walk(x, url, port)),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(table).expect("TOML tables convert to JSON");
    walk(&mut v, server_url, &port.to_string());
    if let Some(caches) = v.get_mut("CACHES").and_then(|c| c.as_object_mut()) {
        for alias in caches.values_mut().filter_map(|a| a.as_object_mut()) {
            alias.entry("LOCATION").or_insert_with(|| server_url.into());
        }
    }
    v
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
