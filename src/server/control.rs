//! Minimal RESP exchanges for readiness (PING) and SHUTDOWN, shared by every runtime. A client
//! connection with reconnect logic would only obscure what is sent; these run between load
//! phases, never on the hot path.

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

/// memcached's `version` reply (`VERSION 1.6.18`): the readiness check of the text protocol.
pub fn memcached_version(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    stream.write_all(b"version\r\n").ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 128];
    while !reply.ends_with(b"\r\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&reply)
        .strip_prefix("VERSION ")
        .map(|v| v.trim().to_string())
}
