//! Failure classification: the app logs each exception that ends a request — unhandled ones
//! (500) and those Django answers with a 4xx itself, like `SessionInterrupted` (400) — as one
//! JSON line (`CACHEGATE_EXCEPTION {...}`, see targets/django/cgapp/exceptions.py). These are grouped by
//! signature (innermost cause type and first message line, with ports and addresses normalized
//! so the same failure in two cells has the same signature).

use std::collections::BTreeMap;

use serde::Deserialize;

pub use crate::results::AppException;

const MARKER: &str = "CACHEGATE_EXCEPTION ";

#[derive(Deserialize)]
struct LogRecord {
    #[serde(rename = "type")]
    kind: String,
    message: String,
    innermost_type: String,
    innermost_message: String,
    #[serde(default)]
    chain: Vec<String>,
    #[serde(default)]
    path: String,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    frames: Vec<String>,
}

/// All exception signatures in an app log, most frequent first.
pub fn from_log(log: &str, step_of_path: impl Fn(&str) -> &'static str) -> Vec<AppException> {
    let mut by_sig: BTreeMap<String, AppException> = BTreeMap::new();
    let mut order = Vec::new();
    for line in log.lines() {
        let Some(json) = line.find(MARKER).map(|i| &line[i + MARKER.len()..]) else {
            continue;
        };
        let Ok(r) = serde_json::from_str::<LogRecord>(json) else {
            continue;
        };
        let signature = normalize(&format!("{}: {}", r.innermost_type, r.innermost_message));
        by_sig
            .entry(signature.clone())
            .or_insert_with(|| {
                order.push(signature.clone());
                AppException {
                    signature,
                    exception_type: r.kind,
                    message: normalize(&r.message),
                    innermost_type: r.innermost_type,
                    innermost_message: normalize(&r.innermost_message),
                    chain: r.chain.iter().map(|c| normalize(c)).collect(),
                    first_step: step_of_path(&r.path).to_string(),
                    first_path: r.path,
                    status: r.status,
                    count: 0,
                    frames: r.frames,
                }
            })
            .count += 1;
    }
    let mut out: Vec<AppException> = order
        .into_iter()
        .filter_map(|s| by_sig.remove(&s))
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.count));
    out
}

/// Replace what differs between cells of the same failure: ports, object addresses.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest
            .strip_prefix("127.0.0.1:")
            .or_else(|| rest.strip_prefix("localhost:"))
        {
            let host = &rest[..rest.len() - after.len()];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 {
                out.push_str(host);
                out.push_str("PORT");
                rest = &after[digits..];
                continue;
            }
        }
        if let Some(after) = rest.strip_prefix("0x") {
            let hex = after.bytes().take_while(u8::is_ascii_hexdigit).count();
            if hex >= 6 {
                out.push_str("0x…");
                rest = &after[hex..];
                continue;
            }
        }
        let c = rest.chars().next().expect("rest is not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_normalized_signature() {
        let log = r#"noise
CACHEGATE_EXCEPTION {"type": "redis.exceptions.ConnectionError", "message": "Error 111 connecting to 127.0.0.1:40123. Connection refused.", "innermost_type": "redis.exceptions.ConnectionError", "innermost_message": "Error 111 connecting to 127.0.0.1:40123. Connection refused.", "chain": [], "method": "POST", "path": "/login/"}
[2026] gunicorn says something
CACHEGATE_EXCEPTION {"type": "redis.exceptions.ConnectionError", "message": "Error 111 connecting to 127.0.0.1:40999. Connection refused.", "innermost_type": "redis.exceptions.ConnectionError", "innermost_message": "Error 111 connecting to 127.0.0.1:40999. Connection refused.", "chain": [], "method": "GET", "path": "/me/"}
CACHEGATE_EXCEPTION {"type": "TypeError", "message": "x", "innermost_type": "TypeError", "innermost_message": "x", "path": "/me/"}
"#;
        let ex = from_log(log, |p| if p == "/login/" { "login" } else { "me" });
        assert_eq!(ex.len(), 2);
        assert_eq!(
            ex[0].signature,
            "redis.exceptions.ConnectionError: Error 111 connecting to 127.0.0.1:PORT. Connection refused."
        );
        assert_eq!(ex[0].count, 2);
        assert_eq!(ex[0].first_step, "login");
        assert_eq!(ex[1].signature, "TypeError: x");
        assert_eq!(normalize("<obj at 0x7f3a2b1c9d80>"), "<obj at 0x…>");
    }
}
