//! Cache entries written through one app and read back through another (`stack-transition`):
//! what a deploy that changes Django, the cache backend, its serializer or its compressor does to
//! the entries the old version left in the server. The bundled app's `cache/KEY/` endpoint
//! stores a JSON body as the Python value it decodes to, through `CACHES["default"]`, and reads
//! it back; so each side encodes and decodes with its own backend settings.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::results::checks::upgrade::Items;

/// Kinds of cached values: an integer (Django's and django-redis's Redis backends store these
/// unserialized, so they can survive what breaks the others), a text and a nested structure
/// (serialized, and compressed by a compressor: both are above django-redis's 15-byte minimum).
pub const KINDS: &[&str] = &["int", "text", "dict"];

pub struct CachedValue {
    pub key: String,
    pub kind: &'static str,
    pub value: Value,
}

/// `per_kind` values of each kind, under keys that start with `tag` (unique to the cell).
pub fn values(tag: &str, per_kind: u32) -> Vec<CachedValue> {
    let mut out = Vec::new();
    for &kind in KINDS {
        for i in 0..per_kind {
            let value = match kind {
                "int" => json!(1_000_000 + i as u64),
                "text" => json!(format!("{tag} entry {i}: ").repeat(8)),
                _ => json!({
                    "id": i,
                    "name": format!("{tag}-{i}"),
                    "tags": ["a", "b", "c"],
                    "nested": { "score": i as f64 + 0.5, "ok": true, "none": null },
                }),
            };
            out.push(CachedValue {
                key: format!("{tag}-{kind}-{i}"),
                kind,
                value,
            });
        }
    }
    out
}

/// What a read through an app found.
#[derive(Debug, PartialEq)]
pub enum Read {
    Same,
    Changed,
    Missing,
    /// The app could not answer (it raised: its log says what), or the request failed.
    Failed(String),
}

pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("a plain HTTP client builds")
}

fn url(base: &str, key: &str) -> String {
    format!("{}/cache/{key}/", base.trim_end_matches('/'))
}

/// Store `v` through the app at `base`.
pub async fn write(client: &reqwest::Client, base: &str, v: &CachedValue) -> Result<(), String> {
    let r = client
        .post(url(base, &v.key))
        .json(&v.value)
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    match r.status().as_u16() {
        200 => Ok(()),
        status => Err(format!("HTTP {status} writing {}", v.key)),
    }
}

/// Read `v` back through the app at `base` and compare it with what was written.
pub async fn read(client: &reqwest::Client, base: &str, v: &CachedValue) -> Read {
    let r = match client.get(url(base, &v.key)).send().await {
        Ok(r) => r,
        Err(e) => return Read::Failed(format!("request failed: {e}")),
    };
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    match (status, body.get("found")) {
        (200, Some(Value::Bool(true))) if body.get("value") == Some(&v.value) => Read::Same,
        (200, Some(Value::Bool(true))) => Read::Changed,
        (404, Some(Value::Bool(false))) => Read::Missing,
        _ => Read::Failed(format!("HTTP {status} reading {}", v.key)),
    }
}

/// Count a read into its kind's items.
pub fn count(by_kind: &mut BTreeMap<String, Items>, v: &CachedValue, read: &Read) {
    let items = by_kind.entry(v.kind.to_string()).or_default();
    match read {
        Read::Same => items.kept += 1,
        Read::Changed => items.changed += 1,
        Read::Missing => items.lost += 1,
        Read::Failed(_) => items.unknown += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_distinct_per_key_and_cell() {
        let a = values("c1", 2);
        assert_eq!(a.len(), 2 * KINDS.len());
        let keys: std::collections::BTreeSet<_> = a.iter().map(|v| v.key.clone()).collect();
        assert_eq!(keys.len(), a.len());
        let b = values("c2", 2);
        assert!(a.iter().zip(&b).all(|(x, y)| x.key != y.key));
        assert!(a.iter().any(|v| v.value.is_object()));
    }
}
