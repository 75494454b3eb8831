//! One user of the web app with its own cookie jar, for scenarios that verify sessions rather
//! than generate load (session-persistence, eviction): log in once, check the session later.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::target::{BodyFormat, TargetSection};

/// What checking a session gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// The app still knows the user.
    Valid,
    /// The app answered but does not know the user (the session is gone).
    Lost(u16),
    /// The app failed to answer properly (5xx, connection error): says nothing about the session.
    Error(String),
}

pub struct Browser {
    client: reqwest::Client,
    base: String,
    target: TargetSection,
    token: Option<String>,
    pub username: String,
    password: String,
}

impl Browser {
    pub fn new(base: &str, target: &TargetSection, username: String, timeout: Duration) -> Browser {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .timeout(timeout)
            .no_proxy()
            .build()
            .expect("an HTTP client with a cookie store builds");
        Browser {
            client,
            base: base.trim_end_matches('/').to_string(),
            target: target.clone(),
            token: None,
            password: format!("Cg-{username}-pw"),
            username,
        }
    }

    /// Fetch a CSRF token, register, log in. Errors name the step and what went wrong.
    pub async fn sign_up_and_log_in(&mut self) -> Result<(), String> {
        let p = self.target.paths.clone();
        if !p.csrf.is_empty() {
            let body = self.send("csrf", &p.csrf, None).await?;
            self.take_token(&body);
        }
        let f = &self.target.fields;
        let creds = BTreeMap::from([
            (f.username.clone(), self.username.clone()),
            (f.password.clone(), self.password.clone()),
        ]);
        let body = self.send("register", &p.register, Some(&creds)).await?;
        self.take_token(&body);
        let body = self.send("login", &p.login, Some(&creds)).await?;
        self.take_token(&body);
        match self.check().await {
            SessionState::Valid => Ok(()),
            other => Err(format!("me: right after login: {other:?}")),
        }
    }

    /// Is the session still valid?
    /// Send the next requests to another app (another stack on the same server), keeping the
    /// cookies: what a user sees when a deploy switches stacks under them.
    pub fn switch_to(&mut self, base: &str) {
        self.base = base.trim_end_matches('/').to_string();
    }

    pub async fn check(&self) -> SessionState {
        self.read().await.0
    }

    /// An authenticated read: what it says about the session, and the HTTP status if the app
    /// answered.
    pub async fn read(&self) -> (SessionState, Option<u16>) {
        let url = format!("{}{}", self.base, self.target.paths.me);
        match self.client.get(&url).send().await {
            Err(e) => (SessionState::Error(format!("request failed: {e}")), None),
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                let state = match status {
                    200..=299 if body.contains(&self.username) => SessionState::Valid,
                    200..=299 | 401 | 403 | 302 => SessionState::Lost(status),
                    _ => SessionState::Error(format!("HTTP {status}")),
                };
                (state, Some(status))
            }
        }
    }

    async fn send(
        &self,
        step: &str,
        path: &str,
        form: Option<&BTreeMap<String, String>>,
    ) -> Result<String, String> {
        let url = format!("{}{path}", self.base);
        let mut req = match form {
            Some(_) => self.client.post(&url),
            None => self.client.get(&url),
        };
        if let (Some(t), Some(_)) = (&self.token, form) {
            req = req.header(self.target.fields.csrf_header.as_str(), t.as_str());
        }
        if let Some(fields) = form {
            req = match self.target.format {
                BodyFormat::Form => req.form(fields),
                BodyFormat::Json => req.json(fields),
            };
        }
        let r = req
            .send()
            .await
            .map_err(|e| format!("{step}: request failed: {e}"))?;
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{step}: HTTP {}", status.as_u16()))
        }
    }

    fn take_token(&mut self, body: &str) {
        let v: Option<serde_json::Value> = serde_json::from_str(body).ok();
        if let Some(t) = v
            .as_ref()
            .and_then(|v| v.get(&self.target.fields.csrf_token))
            .and_then(|t| t.as_str())
        {
            self.token = Some(t.to_string());
        }
    }
}
