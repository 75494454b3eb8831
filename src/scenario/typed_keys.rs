//! Raw keys of several types (strings, hashes, sets; with and without a TTL) that the data
//! transitions write before a switch and read back after it: what a server kept of another's
//! data, compared value by value and TTL by TTL.

use std::collections::{BTreeMap, BTreeSet};

use super::resp::{RespConn, Value};

/// Raw key types written before the switch: (name, with a TTL).
const KEY_TYPES: &[(&str, bool)] = &[
    ("string", false),
    ("string+ttl", true),
    ("hash", false),
    ("hash+ttl", true),
    ("set", false),
    ("set+ttl", true),
];

/// Long enough that no key expires during the cell, so a missing TTL is the server's doing.
const KEY_TTL_SECS: u64 = 3600;

/// One raw key: its name, type, and what it must read back as.
pub struct Key {
    pub name: String,
    pub kind: &'static str,
    pub ttl: bool,
    data: Data,
}

#[derive(Debug, PartialEq)]
enum Data {
    String(Vec<u8>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
}

pub fn keys(prefix: &str, per_type: u64) -> Vec<Key> {
    let mut out = Vec::new();
    for &(kind, ttl) in KEY_TYPES {
        for i in 0..per_type {
            let v = |j: u64| format!("{kind}-{i}-{j}").into_bytes();
            let data = match kind.trim_end_matches("+ttl") {
                "string" => Data::String(v(0)),
                "hash" => Data::Hash(
                    (0..4)
                        .map(|j| (format!("f{j}").into_bytes(), v(j)))
                        .collect(),
                ),
                _ => Data::Set((0..5).map(v).collect()),
            };
            out.push(Key {
                name: format!("{prefix}upgrade:{kind}:{i}"),
                kind,
                ttl,
                data,
            });
        }
    }
    out
}

/// Write one key (and its TTL); an error reply is an error.
pub async fn write(conn: &mut RespConn, key: &Key) -> Result<(), String> {
    let name = key.name.as_bytes();
    let mut args: Vec<Vec<u8>> = match &key.data {
        Data::String(v) => vec![b"SET".to_vec(), name.to_vec(), v.clone()],
        Data::Hash(h) => {
            let mut a = vec![b"HSET".to_vec(), name.to_vec()];
            for (f, v) in h {
                a.extend([f.clone(), v.clone()]);
            }
            a
        }
        Data::Set(s) => {
            let mut a = vec![b"SADD".to_vec(), name.to_vec()];
            a.extend(s.iter().cloned());
            a
        }
    };
    let mut commands = vec![std::mem::take(&mut args)];
    if key.ttl {
        commands.push(vec![
            b"EXPIRE".to_vec(),
            name.to_vec(),
            KEY_TTL_SECS.to_string().into_bytes(),
        ]);
    }
    for c in commands {
        let refs: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
        match conn.query(&refs).await.map_err(|e| e.to_string())? {
            Value::Error(e) => return Err(e),
            _ => continue,
        }
    }
    Ok(())
}

/// What a key reads back as.
pub enum Seen {
    Same,
    Changed(String),
    Missing,
}

pub async fn read_back(conn: &mut RespConn, key: &Key) -> Result<Seen, String> {
    let name = key.name.as_bytes();
    let cmd: &[u8] = match key.data {
        Data::String(_) => b"GET",
        Data::Hash(_) => b"HGETALL",
        Data::Set(_) => b"SMEMBERS",
    };
    let reply = conn.query(&[cmd, name]).await.map_err(|e| e.to_string())?;
    let bulk = |v: &Value| match v {
        Value::Bulk(b) => Some(b.clone()),
        _ => None,
    };
    let got = match (&key.data, reply) {
        (_, Value::Error(e)) => return Err(e),
        (Data::String(_), Value::Nil) => return Ok(Seen::Missing),
        (Data::String(_), v) => bulk(&v).map(Data::String),
        (Data::Hash(_), Value::Array(items)) if items.is_empty() => return Ok(Seen::Missing),
        (Data::Hash(_), Value::Array(items)) => items
            .chunks(2)
            .map(|p| Some((bulk(&p[0])?, bulk(p.get(1)?)?)))
            .collect::<Option<_>>()
            .map(Data::Hash),
        (Data::Set(_), Value::Array(items)) if items.is_empty() => return Ok(Seen::Missing),
        (Data::Set(_), Value::Array(items)) => {
            items.iter().map(bulk).collect::<Option<_>>().map(Data::Set)
        }
        (_, other) => return Ok(Seen::Changed(format!("unexpected reply {other:?}"))),
    };
    if got.as_ref() != Some(&key.data) {
        return Ok(Seen::Changed("another value".into()));
    }
    let ttl = match conn
        .query(&[b"PTTL", name])
        .await
        .map_err(|e| e.to_string())?
    {
        Value::Integer(ms) => ms,
        other => return Err(format!("PTTL answered {other:?}")),
    };
    Ok(match (key.ttl, ttl) {
        (true, ms) if ms > 0 => Seen::Same,
        (true, _) => Seen::Changed("its TTL is gone".into()),
        (false, -1) => Seen::Same,
        (false, ms) => Seen::Changed(format!("it gained a TTL ({ms} ms)")),
    })
}

/// "redis 7.4.1" or "valkey 9.1.2", as the running server reports itself (`INFO server`).
pub async fn server_name(conn: &mut RespConn) -> Result<String, String> {
    let info = match conn.query(&[b"INFO", b"server"]).await {
        Ok(Value::Bulk(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(other) => return Err(format!("INFO answered {other:?}")),
        Err(e) => return Err(e.to_string()),
    };
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    };
    Ok(match field("valkey_version") {
        Some(v) => format!("valkey {v}"),
        None => format!("redis {}", field("redis_version").unwrap_or_default()),
    })
}
