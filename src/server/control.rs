//! Minimal RESP exchanges for readiness (PING) and SHUTDOWN, and memcached's `version` and
//! `stats`, shared by every runtime. A client connection with reconnect logic would only obscure
//! what is sent; these run between load phases, never on the hot path.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::runtime::{Endpoint, StopKind};
use super::spec::Protocol;

/// Send one command (after AUTH when a password is set) and read a line per command sent.
pub fn send_command(
    addr: SocketAddr,
    password: Option<&str>,
    args: &[&str],
) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut payload = Vec::new();
    let mut push = |cmd: &[&str]| {
        payload.extend(format!("*{}\r\n", cmd.len()).bytes());
        for a in cmd {
            payload.extend(format!("${}\r\n", a.len()).bytes());
            payload.extend(a.bytes());
            payload.extend(b"\r\n");
        }
    };
    if let Some(pw) = password {
        push(&["AUTH", pw]);
    }
    push(args);
    stream.write_all(&payload)?;
    let mut reply = String::new();
    let mut buf = [0u8; 512];
    // Read until we have one line per command sent.
    let expected_lines = if password.is_some() { 2 } else { 1 };
    while reply.matches("\r\n").count() < expected_lines {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        reply.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    Ok(reply)
}

/// Does the server answer PONG (not LOADING, not an auth error)?
pub fn ping(addr: SocketAddr, password: Option<&str>) -> bool {
    send_command(addr, password, &["PING"])
        .map(|r| r.lines().last().is_some_and(|l| l.starts_with("+PONG")))
        .unwrap_or(false)
}

/// Is the server ready for clients: PONG over RESP, or a `version` reply from memcached.
pub fn ready(protocol: Protocol, addr: SocketAddr, password: Option<&str>) -> bool {
    match protocol {
        Protocol::Resp => ping(addr, password),
        Protocol::Memcache => memcached_version(addr).is_some(),
    }
}

/// `SHUTDOWN NOSAVE` or `SHUTDOWN SAVE`; the connection closes without a reply when the
/// server exits, so the reply is not looked at: the caller waits for the exit.
pub fn shutdown(endpoint: Endpoint, how: StopKind) {
    let mode = match how {
        StopKind::Save => "SAVE",
        _ => "NOSAVE",
    };
    let _ = send_command(
        endpoint.addr,
        endpoint.password.as_deref(),
        &["SHUTDOWN", mode],
    );
}

/// One memcached text-protocol command, its reply read until it ends with `terminator`.
fn memcached_exchange(addr: SocketAddr, command: &str, terminator: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    stream.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !reply.ends_with(terminator) {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&reply).into_owned())
}

/// memcached's `version` reply (`VERSION 1.6.18`): the readiness check of the text protocol.
pub fn memcached_version(addr: SocketAddr) -> Option<String> {
    memcached_exchange(addr, "version", b"\r\n")?
        .strip_prefix("VERSION ")
        .map(|v| v.trim().to_string())
}

/// memcached's `stats` (`STAT evictions 12` lines up to `END`) as name → value.
pub fn memcached_stats(addr: SocketAddr) -> Option<std::collections::BTreeMap<String, String>> {
    let reply = memcached_exchange(addr, "stats", b"END\r\n")?;
    Some(
        reply
            .lines()
            .filter_map(|l| l.strip_prefix("STAT "))
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect(),
    )
}
