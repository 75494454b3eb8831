//! How a user signs in, reads an authenticated page and signs out: one description of each step
//! of the flow (the request to send, and what the reply must show) shared by the load flow
//! (`scenario::login_flow`, through goose) and the single users that verify sessions
//! (`scenario::browser`). Two protocols:
//!
//! - `api`: the bundled app's JSON endpoints (a CSRF endpoint, register, login, me, logout), the
//!   token in JSON bodies and sent back in a header;
//! - `form`: Django's own `LoginView` / `LogoutView` with HTML forms, as a team's project has
//!   them. No registration: the accounts are created up front through the project's user model.
//!   The CSRF token comes from the `csrftoken` cookie (or the form's hidden
//!   `csrfmiddlewaretoken` field) and goes back in that field and the header. Redirects are not
//!   followed, so a sign-in is judged by where it sends the user: away from the login page.

use crate::results::failure::Failure;
use serde::{Deserialize, Serialize};

use super::{BodyFormat, TargetSection};

/// `[target] login`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LoginKind {
    /// The bundled app's JSON endpoints (or an external app built the same way).
    #[default]
    Api,
    /// Django's LoginView/LogoutView with HTML forms; accounts created up front.
    Form,
}

/// Step names, indexed by `Step as usize`.
pub const STEP_NAMES: &[&str] = &["csrf", "register", "login", "me", "logout", "me-anon"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Fetch a CSRF token (the API's endpoint, or the login page with its form).
    Csrf,
    Register,
    Login,
    /// The authenticated read.
    Me,
    Logout,
    /// The same read after logout: it must not show the user.
    MeAnon,
}

impl Step {
    pub fn name(self) -> &'static str {
        STEP_NAMES[self as usize]
    }
}

/// Who signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub login: String,
    pub password: String,
}

/// One request of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// POST (with `form` as its body) or GET.
    pub post: bool,
    pub path: String,
    pub form: Vec<(String, String)>,
    /// The CSRF header to send, if a token is known and the request is a POST.
    pub header: Option<(String, String)>,
}

/// What came back, as far as judging a step needs.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    pub status: u16,
    /// The `Location` header of a redirect.
    pub location: Option<&'a str>,
    /// The values of its `Set-Cookie` headers.
    pub cookies: &'a [String],
    pub body: &'a str,
}

/// The flow of one target.
#[derive(Debug, Clone)]
pub struct Protocol {
    target: TargetSection,
}

impl Protocol {
    pub fn new(target: &TargetSection) -> Protocol {
        Protocol {
            target: target.clone(),
        }
    }

    pub fn kind(&self) -> LoginKind {
        self.target.login
    }

    /// Are accounts registered by the flow itself (else they are created up front)?
    pub fn registers(&self) -> bool {
        self.kind() == LoginKind::Api
    }

    /// An HTTP client for one user: its own cookie jar; under `form`, redirects are answers to
    /// judge, not to follow.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder().cookie_store(true).no_proxy();
        match self.kind() {
            LoginKind::Api => builder,
            LoginKind::Form => builder.redirect(reqwest::redirect::Policy::none()),
        }
    }

    /// The request of `step`, or `None` when this protocol has no such step (registration under
    /// `form`, a CSRF fetch when `paths.csrf` is empty under `api`).
    pub fn request(&self, step: Step, who: &Account, token: Option<&str>) -> Option<Request> {
        let p = &self.target.paths;
        let f = &self.target.fields;
        let creds = vec![
            (f.username.clone(), who.login.clone()),
            (f.password.clone(), who.password.clone()),
        ];
        let form = self.kind() == LoginKind::Form;
        let (post, path, mut fields) = match step {
            Step::Csrf if form => (false, &p.login, vec![]),
            Step::Csrf if p.csrf.is_empty() => return None,
            Step::Csrf => (false, &p.csrf, vec![]),
            Step::Register if form => return None,
            Step::Register => (true, &p.register, creds),
            Step::Login => (true, &p.login, creds),
            Step::Me | Step::MeAnon => (false, &p.me, vec![]),
            Step::Logout => (true, &p.logout, vec![]),
        };
        if let (true, true, Some(t)) = (form, post, token) {
            fields.push(("csrfmiddlewaretoken".into(), t.to_string()));
        }
        Some(Request {
            post,
            path: path.clone(),
            form: fields,
            header: token
                .filter(|_| post)
                .map(|t| (f.csrf_header.clone(), t.to_string())),
        })
    }

    /// Encode a request's body as the target takes it (forms always for `form`).
    pub fn body(&self, builder: reqwest::RequestBuilder, r: &Request) -> reqwest::RequestBuilder {
        let mut builder = match &r.header {
            Some((name, value)) => builder.header(name.as_str(), value.as_str()),
            None => builder,
        };
        if r.post {
            builder = match (self.kind(), self.target.format) {
                (LoginKind::Api, BodyFormat::Json) => builder.json(
                    &r.form
                        .iter()
                        .cloned()
                        .collect::<std::collections::BTreeMap<_, _>>(),
                ),
                _ => builder.form(&r.form),
            };
        }
        builder
    }

    /// The text the authenticated page shows for `who`: `[target] me_shows` with `{user}` as
    /// the login (the login itself by default).
    pub fn shows(&self, who: &Account) -> String {
        match &self.target.me_shows {
            Some(text) => text.replace("{user}", &who.login),
            None => who.login.clone(),
        }
    }

    /// Did the step do what it should? `Err` names what went wrong, in a few words.
    pub fn judge(&self, step: Step, who: &Account, reply: &Reply<'_>) -> Result<(), Failure> {
        let status = reply.status;
        let success = (200..300).contains(&status);
        let redirect = (300..400).contains(&status);
        let shows = success && reply.body.contains(&self.shows(who));
        let form = self.kind() == LoginKind::Form;
        match step {
            Step::Me if shows => Ok(()),
            Step::Me if success => Err(Failure::WrongUser),
            Step::Me if form && redirect => Err(Failure::NotSignedIn {
                sent_to: reply.location.unwrap_or("?").to_string(),
            }),
            Step::MeAnon if shows => Err(Failure::StillLoggedInAfterLogout),
            Step::MeAnon => Ok(()),
            Step::Login if form && redirect => {
                let to = reply.location.unwrap_or("");
                if to.is_empty() || path_of(to) == self.target.paths.login {
                    Err(Failure::SignInRefused {
                        sent_back_to: Some(to.to_string()),
                    })
                } else {
                    Ok(())
                }
            }
            Step::Login if form && success => Err(Failure::SignInRefused { sent_back_to: None }),
            Step::Login if success && !shows => Err(Failure::WrongUser),
            Step::Csrf if form && success && self.token(reply).is_none() => {
                Err(Failure::NoCsrfToken)
            }
            Step::Logout if form && redirect => Ok(()),
            _ if success => Ok(()),
            _ => Err(Failure::Http(status)),
        }
    }

    /// The CSRF token a reply hands out, if any: the JSON field (`api`); the cookie, else the
    /// form's hidden field (`form`).
    pub fn token(&self, reply: &Reply<'_>) -> Option<String> {
        let name = &self.target.fields.csrf_token;
        match self.kind() {
            LoginKind::Api => {
                let v: serde_json::Value = serde_json::from_str(reply.body).ok()?;
                v.get(name)?.as_str().map(String::from)
            }
            LoginKind::Form => reply
                .cookies
                .iter()
                .find_map(|c| {
                    let (k, rest) = c.split_once('=')?;
                    let value = rest.split(';').next()?.trim();
                    (k.trim() == name && !value.is_empty()).then(|| value.to_string())
                })
                .or_else(|| hidden_field(reply.body, "csrfmiddlewaretoken")),
        }
    }
}

/// What judging reads from a reply's headers: its `Location` and its `Set-Cookie` values.
pub fn reply_headers(headers: &reqwest::header::HeaderMap) -> (Option<String>, Vec<String>) {
    let location = headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let cookies = headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    (location, cookies)
}

/// The path of a `Location` (absolute or relative), without its query.
fn path_of(location: &str) -> &str {
    let rest = location
        .split_once("://")
        .map(|(_, r)| r.find('/').map_or("/", |i| &r[i..]))
        .unwrap_or(location);
    rest.split(['?', '#']).next().unwrap_or(rest)
}

/// The value of `<input ... name="NAME" value="...">` in an HTML page.
fn hidden_field(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + "value=\"".len();
    let end = tag[v..].find('"')?;
    Some(tag[v..v + end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form_target() -> TargetSection {
        TargetSection {
            login: LoginKind::Form,
            paths: super::super::Paths {
                login: "/accounts/login/".into(),
                me: "/shelf/".into(),
                logout: "/accounts/logout/".into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn reply<'a>(status: u16, location: Option<&'a str>, body: &'a str) -> Reply<'a> {
        Reply {
            status,
            location,
            cookies: &[],
            body,
        }
    }

    #[test]
    fn form_login_is_judged_by_where_it_sends_the_user() {
        let p = Protocol::new(&form_target());
        let who = Account {
            login: "a@b.example".into(),
            password: "pw".into(),
        };
        assert!(p.request(Step::Register, &who, None).is_none());
        let login = p.request(Step::Login, &who, Some("tok")).unwrap();
        assert!(login.post);
        assert!(login
            .form
            .contains(&("csrfmiddlewaretoken".into(), "tok".into())));
        assert_eq!(login.header, Some(("X-CSRFToken".into(), "tok".into())));
        let to_shelf = reply(302, Some("/shelf/"), "");
        assert_eq!(p.judge(Step::Login, &who, &to_shelf), Ok(()));
        let back = reply(
            302,
            Some("http://127.0.0.1:8000/accounts/login/?next=/x"),
            "",
        );
        assert!(p.judge(Step::Login, &who, &back).is_err());
        assert!(p
            .judge(Step::Login, &who, &reply(200, None, "<form>"))
            .is_err());
        let page = reply(200, None, "Signed in as a@b.example");
        assert_eq!(p.judge(Step::Me, &who, &page), Ok(()));
        assert!(p.judge(Step::MeAnon, &who, &page).is_err());
        let sent_away = reply(302, Some("/accounts/login/?next=/shelf/"), "");
        assert!(p.judge(Step::Me, &who, &sent_away).is_err());
        assert_eq!(p.judge(Step::MeAnon, &who, &sent_away), Ok(()));
        assert!(p.judge(Step::Logout, &who, &reply(405, None, "")).is_err());
    }

    #[test]
    fn form_tokens_come_from_the_cookie_else_the_hidden_field() {
        let p = Protocol::new(&form_target());
        let cookies = vec!["csrftoken=abc123; expires=never; Path=/".to_string()];
        let r = Reply {
            status: 200,
            location: None,
            cookies: &cookies,
            body: "",
        };
        assert_eq!(p.token(&r).as_deref(), Some("abc123"));
        let html = r#"<form><input type="hidden" name="csrfmiddlewaretoken" value="xyz"></form>"#;
        assert_eq!(p.token(&reply(200, None, html)).as_deref(), Some("xyz"));
        assert_eq!(p.token(&reply(200, None, "<p>no form</p>")), None);
    }
}
