//! Secrets out of what a run records and shows: the password in a URL's user part
//! (`redis://:pw@host`, `rediss://user:pw@host`) and the values of password-like keys
//! (`PASSWORD`, `SECRET_KEY`, `requirepass`, ...). Applied when a result is recorded and again
//! when a report shows settings, so results written before it show no secret either.

use std::sync::LazyLock;

use regex::Regex;

pub const REDACTED: &str = "<redacted>";

static URL_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)([a-z][a-z0-9+.-]*://[^:/@\s]*):([^@/\s]+)@").expect("valid pattern")
});

/// `PASSWORD`, `password`, `SECRET_KEY`, `api_token`, `requirepass`; not `PASSWORD_HASHERS`.
static SECRET_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(^|_)(password|passwd|requirepass|secret(_key)?|token)$")
        .expect("valid pattern")
});

/// `text` with every URL's password replaced.
pub fn url(text: &str) -> String {
    URL_PASSWORD
        .replace_all(text, format!("$1:{REDACTED}@"))
        .into_owned()
}

/// A settings document with URL passwords and password-like keys' values replaced.
pub fn settings(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(url(s)),
        Value::Array(items) => Value::Array(items.iter().map(settings).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if SECRET_KEY.is_match(k) && !v.is_null() {
                        Value::String(REDACTED.into())
                    } else {
                        settings(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn passwords_in_urls_and_secret_keys_are_replaced() {
        let s = json!({
            "CACHES": {"default": {
                "LOCATION": ["redis://:s3cr3t@127.0.0.1:6379/0", "rediss://app:pw@127.0.0.1:1/1"],
                "OPTIONS": {"PASSWORD": "hunter2", "db": 1}
            }},
            "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
            "SECRET_KEY": "k",
            "plain": "redis://127.0.0.1:6379/0"
        });
        let r = settings(&s).to_string();
        for secret in ["s3cr", "hunter2", ":pw@", "\"k\""] {
            assert!(!r.contains(secret), "{secret} in {r}");
        }
        assert!(r.contains("redis://:<redacted>@127.0.0.1:6379/0"), "{r}");
        assert!(r.contains("rediss://app:<redacted>@127.0.0.1:1/1"), "{r}");
        assert!(r.contains("MD5PasswordHasher") && r.contains("redis://127.0.0.1:6379/0"));
    }
}
