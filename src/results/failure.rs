//! Why one operation failed, as a type with a stable name. The error counts in `results.jsonl`
//! (`errors[].kind`), the failure signatures built from them and the `[[expect]] signature` a
//! matrix matches on all key on `Failure`'s `Display`, so a name, once recorded, never changes:
//! add a variant rather than rename one. Every scenario and the login protocol record failures
//! through this one type, so the same failure has the same name in every scenario.

use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Failure {
    // A connection to the server or the app.
    /// No reply within the op timeout (or the HTTP client's timeout).
    Timeout,
    /// A reply that came after the op timeout had already counted the operation as failed.
    LateReply,
    ConnectionRefused,
    /// The connection broke (reset, closed by the server).
    ConnectionLost,
    /// Another HTTP transport failure.
    ConnectionError,
    /// The server refused the credentials.
    AuthFailed,
    /// A reply the RESP parser could not read.
    ProtocolError,
    /// An error reply, by its code when there is one (`ERR`, `WRONGTYPE`, `OOM`, `READONLY`):
    /// see `server_error`.
    ServerError(Option<Cow<'static, str>>),

    // An HTTP request to the app.
    /// The request could not be built.
    BadRequest,
    /// The HTTP client failed before there was a reply.
    RequestError,
    /// A status that the step does not expect.
    Http(u16),
    /// The page was another user's.
    WrongUser,
    /// A form login's `me` page sent the user to sign in.
    NotSignedIn {
        sent_to: String,
    },
    StillLoggedInAfterLogout,
    /// A form login sent back to the login page (`Some(location)`) or the form came back.
    SignInRefused {
        sent_back_to: Option<String>,
    },
    NoCsrfToken,

    // What a verification found.
    SessionLost,
    /// The check itself could not be made (its request failed).
    CheckFailed,
    ConnectFailed,
    WriteFailed,
    ReadFailed,
    KeyChanged,
    KeyLost,
    CacheWriteFailed,
    CacheReadFailed,
    CacheEntryChanged,
    CacheEntryMissing,
    ReadBackFailed,
    /// WAIT returned before as many replicas as asked acknowledged the write.
    WaitFewerReplicas,
    /// A step of a user's setup failed (`register failed`, `login failed`).
    StepFailed(&'static str),
    /// A test of a team's own suite that did not pass, by its outcome (`failed`, `error`).
    Test {
        outcome: String,
        test: String,
    },

    /// A failure during one phase of a scenario: `fill: timeout`, `setup: connection refused`,
    /// `login: HTTP 500`.
    During {
        phase: &'static str,
        failure: Box<Failure>,
    },
}

/// The error codes Redis-compatible servers answer with, named without an allocation: an error
/// reply can be the most frequent failure of a cache-ops cell (OOM under eviction, READONLY
/// after a failover), recorded per operation.
const SERVER_ERROR_CODES: &[&str] = &[
    "ERR",
    "WRONGTYPE",
    "OOM",
    "READONLY",
    "NOAUTH",
    "NOPERM",
    "WRONGPASS",
    "LOADING",
    "BUSY",
    "MASTERDOWN",
    "NOREPLICAS",
    "MISCONF",
    "MOVED",
    "ASK",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "CROSSSLOT",
    "EXECABORT",
    "NOSCRIPT",
    "NOPROTO",
    "SERVER_ERROR",
    "CLIENT_ERROR",
];

impl Failure {
    /// `failure` during `phase`.
    pub fn during(phase: &'static str, failure: Failure) -> Failure {
        Failure::During {
            phase,
            failure: Box::new(failure),
        }
    }

    /// An error reply, by its first word (`ERR` when it has none).
    pub fn server_error(reply: &str) -> Failure {
        let code = reply.split_whitespace().next().unwrap_or("ERR");
        let code = match SERVER_ERROR_CODES.iter().find(|c| **c == code) {
            Some(known) => Cow::Borrowed(*known),
            None => Cow::Owned(code.to_string()),
        };
        Failure::ServerError(Some(code))
    }

    /// A connection-level I/O error, grouped by what it means for the user.
    pub fn of_io(e: &std::io::Error) -> Failure {
        use std::io::ErrorKind::*;
        match e.kind() {
            TimedOut => Failure::Timeout,
            ConnectionRefused => Failure::ConnectionRefused,
            PermissionDenied => Failure::AuthFailed,
            InvalidData => Failure::ProtocolError,
            _ => Failure::ConnectionLost,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Failure::Timeout => "timeout",
            Failure::LateReply => "timeout (late reply)",
            Failure::ConnectionRefused => "connection refused",
            Failure::ConnectionLost => "connection lost",
            Failure::ConnectionError => "connection error",
            Failure::AuthFailed => "auth failed",
            Failure::ProtocolError => "protocol error",
            Failure::ServerError(None) => "server error",
            Failure::ServerError(Some(code)) => return write!(f, "server error {code}"),
            Failure::BadRequest => "bad request",
            Failure::RequestError => "request error",
            Failure::Http(status) => return write!(f, "HTTP {status}"),
            Failure::WrongUser => "wrong user",
            Failure::NotSignedIn { sent_to } => {
                return write!(f, "not signed in (sent to {sent_to})")
            }
            Failure::StillLoggedInAfterLogout => "still logged in after logout",
            Failure::SignInRefused {
                sent_back_to: Some(to),
            } => return write!(f, "sign-in refused (sent back to {to:?})"),
            Failure::SignInRefused { sent_back_to: None } => "sign-in refused (the form came back)",
            Failure::NoCsrfToken => "no CSRF token in the login page (cookie or form field)",
            Failure::SessionLost => "session lost",
            Failure::CheckFailed => "check failed",
            Failure::ConnectFailed => "connect failed",
            Failure::WriteFailed => "write failed",
            Failure::ReadFailed => "read failed",
            Failure::KeyChanged => "key changed",
            Failure::KeyLost => "key lost",
            Failure::CacheWriteFailed => "cache write failed",
            Failure::CacheReadFailed => "cache read failed",
            Failure::CacheEntryChanged => "cache entry changed",
            Failure::CacheEntryMissing => "cache entry missing",
            Failure::ReadBackFailed => "read-back failed",
            Failure::WaitFewerReplicas => "WAIT: fewer replicas than asked",
            Failure::StepFailed(step) => return write!(f, "{step} failed"),
            Failure::Test { outcome, test } => return write!(f, "{outcome} {test}"),
            Failure::During { phase, failure } => return write!(f, "{phase}: {failure}"),
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::Failure;

    /// The names are a contract with every results.jsonl already written and every matrix's
    /// `[[expect]] signature`: this list changes only by growing.
    #[test]
    fn names_are_stable() {
        let names = [
            (Failure::Timeout, "timeout"),
            (Failure::LateReply, "timeout (late reply)"),
            (Failure::ConnectionRefused, "connection refused"),
            (Failure::ConnectionLost, "connection lost"),
            (Failure::ConnectionError, "connection error"),
            (Failure::AuthFailed, "auth failed"),
            (Failure::ProtocolError, "protocol error"),
            (Failure::ServerError(None), "server error"),
            (
                Failure::server_error("OOM command not allowed"),
                "server error OOM",
            ),
            (
                Failure::server_error("NEWCODE whatever"),
                "server error NEWCODE",
            ),
            (Failure::BadRequest, "bad request"),
            (Failure::RequestError, "request error"),
            (Failure::Http(500), "HTTP 500"),
            (Failure::WrongUser, "wrong user"),
            (
                Failure::NotSignedIn {
                    sent_to: "/accounts/login/?next=/me".into(),
                },
                "not signed in (sent to /accounts/login/?next=/me)",
            ),
            (
                Failure::StillLoggedInAfterLogout,
                "still logged in after logout",
            ),
            (
                Failure::SignInRefused {
                    sent_back_to: Some("/login/".into()),
                },
                "sign-in refused (sent back to \"/login/\")",
            ),
            (
                Failure::SignInRefused { sent_back_to: None },
                "sign-in refused (the form came back)",
            ),
            (
                Failure::NoCsrfToken,
                "no CSRF token in the login page (cookie or form field)",
            ),
            (Failure::SessionLost, "session lost"),
            (Failure::CheckFailed, "check failed"),
            (Failure::ConnectFailed, "connect failed"),
            (Failure::WriteFailed, "write failed"),
            (Failure::ReadFailed, "read failed"),
            (Failure::KeyChanged, "key changed"),
            (Failure::KeyLost, "key lost"),
            (Failure::CacheWriteFailed, "cache write failed"),
            (Failure::CacheReadFailed, "cache read failed"),
            (Failure::CacheEntryChanged, "cache entry changed"),
            (Failure::CacheEntryMissing, "cache entry missing"),
            (Failure::ReadBackFailed, "read-back failed"),
            (
                Failure::WaitFewerReplicas,
                "WAIT: fewer replicas than asked",
            ),
            (Failure::StepFailed("register"), "register failed"),
            (
                Failure::Test {
                    outcome: "failed".into(),
                    test: "tests.test_cache.CacheTest.test_ttl".into(),
                },
                "failed tests.test_cache.CacheTest.test_ttl",
            ),
            (Failure::during("fill", Failure::Timeout), "fill: timeout"),
            (
                Failure::during("login", Failure::Http(500)),
                "login: HTTP 500",
            ),
        ];
        for (failure, name) in names {
            listed(&failure);
            assert_eq!(failure.to_string(), name, "{failure:?}");
        }
    }

    /// No `_` arm: a new variant does not compile until it is added here, next to the list
    /// above that pins its name.
    fn listed(f: &Failure) {
        match f {
            Failure::Timeout
            | Failure::LateReply
            | Failure::ConnectionRefused
            | Failure::ConnectionLost
            | Failure::ConnectionError
            | Failure::AuthFailed
            | Failure::ProtocolError
            | Failure::ServerError(_)
            | Failure::BadRequest
            | Failure::RequestError
            | Failure::Http(_)
            | Failure::WrongUser
            | Failure::NotSignedIn { .. }
            | Failure::StillLoggedInAfterLogout
            | Failure::SignInRefused { .. }
            | Failure::NoCsrfToken
            | Failure::SessionLost
            | Failure::CheckFailed
            | Failure::ConnectFailed
            | Failure::WriteFailed
            | Failure::ReadFailed
            | Failure::KeyChanged
            | Failure::KeyLost
            | Failure::CacheWriteFailed
            | Failure::CacheReadFailed
            | Failure::CacheEntryChanged
            | Failure::CacheEntryMissing
            | Failure::ReadBackFailed
            | Failure::WaitFewerReplicas
            | Failure::StepFailed(_)
            | Failure::Test { .. }
            | Failure::During { .. } => {}
        }
    }

    #[test]
    fn io_errors_are_grouped_by_what_they_mean() {
        use std::io::{Error, ErrorKind};
        let of = |k| Failure::of_io(&Error::new(k, "x")).to_string();
        assert_eq!(of(ErrorKind::TimedOut), "timeout");
        assert_eq!(of(ErrorKind::ConnectionRefused), "connection refused");
        assert_eq!(of(ErrorKind::PermissionDenied), "auth failed");
        assert_eq!(of(ErrorKind::InvalidData), "protocol error");
        assert_eq!(of(ErrorKind::ConnectionReset), "connection lost");
        assert_eq!(of(ErrorKind::UnexpectedEof), "connection lost");
    }
}
