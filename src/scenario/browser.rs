//! One user of the web app with its own cookie jar, for scenarios that verify sessions rather
//! than generate load (session-persistence, eviction): log in once, check the session later.

use std::time::Duration;

use crate::results::failure::Failure;
use crate::target::protocol::{reply_headers, Account, Protocol, Reply, Step};
use crate::target::TargetSection;

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
    protocol: Protocol,
    token: Option<String>,
    pub username: String,
    account: Account,
}

impl Browser {
    /// A user who registers as `username` (the `api` protocol).
    pub fn new(base: &str, target: &TargetSection, username: String, timeout: Duration) -> Browser {
        let account = Account {
            password: format!("Cg-{username}-pw"),
            login: username,
        };
        Browser::signing_in_as(base, target, account, timeout)
    }

    /// A user who signs in with `account` (made up front under `form`, registered under `api`).
    pub fn signing_in_as(
        base: &str,
        target: &TargetSection,
        account: Account,
        timeout: Duration,
    ) -> Browser {
        let protocol = Protocol::new(target);
        let client = protocol
            .client_builder()
            .timeout(timeout)
            .build()
            .expect("an HTTP client with a cookie store builds");
        Browser {
            client,
            base: base.trim_end_matches('/').to_string(),
            protocol,
            token: None,
            username: account.login.clone(),
            account,
        }
    }

    /// Fetch a CSRF token, register (where the protocol does), log in, and check the session.
    pub async fn sign_up_and_log_in(&mut self) -> Result<(), SignInError> {
        for step in [Step::Csrf, Step::Register, Step::Login] {
            self.send(step).await?;
        }
        match self.check().await {
            SessionState::Valid => Ok(()),
            other => Err(SignInError {
                step: Step::Me.name(),
                what: format!("right after login: {other:?}"),
            }),
        }
    }

    /// Send the next requests to another app (another stack on the same server), keeping the
    /// cookies: what a user sees when a deploy switches stacks under them.
    pub fn switch_to(&mut self, base: &str) {
        self.base = base.trim_end_matches('/').to_string();
    }

    /// Is the session still valid?
    pub async fn check(&self) -> SessionState {
        self.read().await.0
    }

    /// An authenticated read: what it says about the session, and the HTTP status if the app
    /// answered.
    pub async fn read(&self) -> (SessionState, Option<u16>) {
        let Some(r) = self.protocol.request(Step::Me, &self.account, None) else {
            unreachable!("every protocol reads the page");
        };
        let url = format!("{}{}", self.base, r.path);
        match self.client.get(&url).send().await {
            Err(e) => (SessionState::Error(format!("request failed: {e}")), None),
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                let shows = body.contains(&self.protocol.shows(&self.account));
                let state = match status {
                    200..=299 if shows => SessionState::Valid,
                    200..=299 | 401 | 403 | 302 => SessionState::Lost(status),
                    _ => SessionState::Error(format!("HTTP {status}")),
                };
                (state, Some(status))
            }
        }
    }

    /// One step of the protocol, judged; the token it hands out is kept.
    async fn send(&mut self, step: Step) -> Result<(), SignInError> {
        let Some(planned) = self
            .protocol
            .request(step, &self.account, self.token.as_deref())
        else {
            return Ok(());
        };
        let url = format!("{}{}", self.base, planned.path);
        let req = match planned.post {
            true => self.client.post(&url),
            false => self.client.get(&url),
        };
        let r = self
            .protocol
            .body(req, &planned)
            .send()
            .await
            .map_err(|e| SignInError::at(step, format!("request failed: {e}")))?;
        let status = r.status().as_u16();
        let (location, cookies) = reply_headers(r.headers());
        let body = r.text().await.unwrap_or_default();
        let reply = Reply {
            status,
            location: location.as_deref(),
            cookies: &cookies,
            body: &body,
        };
        self.protocol
            .judge(step, &self.account, &reply)
            .map_err(|e| SignInError::at(step, e.to_string()))?;
        if let Some(t) = self.protocol.token(&reply) {
            self.token = Some(t);
        }
        Ok(())
    }
}

/// A sign-in that failed: at which step (`csrf`, `register`, `login`, `me`) and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInError {
    pub step: &'static str,
    pub what: String,
}

impl SignInError {
    fn at(step: Step, what: String) -> SignInError {
        SignInError {
            step: step.name(),
            what,
        }
    }

    /// The error kind it is counted under: `login failed`, `register failed`.
    pub fn failure(&self) -> Failure {
        Failure::StepFailed(self.step)
    }
}

impl std::fmt::Display for SignInError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.what)
    }
}
