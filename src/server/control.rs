//! Minimal RESP exchanges for readiness (PING) and SHUTDOWN, and memcached's `version` and
//! `stats`, shared by every runtime. A client connection with reconnect logic would only obscure
//! what is sent; these run between load phases, never on the hot path.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::runtime::{Endpoint, StopKind};
use super::spec::Protocol;

/// A blocking connection to the server: plain TCP, or TLS on the `tls` transport.
trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

fn connect(
    endpoint: &Endpoint,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> std::io::Result<Box<dyn Stream>> {
    let tcp = TcpStream::connect_timeout(&endpoint.addr, connect_timeout)?;
    tcp.set_read_timeout(Some(read_timeout))?;
    tcp.set_write_timeout(Some(read_timeout))?;
    Ok(match &endpoint.tls {
        None => Box::new(tcp),
        Some(material) => {
            let conn =
                rustls::ClientConnection::new(material.client_config(), material.server_name())
                    .map_err(std::io::Error::other)?;
            Box::new(rustls::StreamOwned::new(conn, tcp))
        }
    })
}

/// Send one command (after AUTH when a password is set) and read a line per command sent.
pub fn send_command(endpoint: &Endpoint, args: &[&str]) -> std::io::Result<String> {
    let mut stream = connect(
        endpoint,
        Duration::from_millis(200),
        Duration::from_millis(500),
    )?;
    let auth = endpoint.auth_args();
    stream.write_all(&encode(auth.as_deref(), args))?;
    let mut reply = String::new();
    let mut buf = [0u8; 512];
    // Read until we have one line per command sent.
    let expected_lines = if auth.is_some() { 2 } else { 1 };
    while reply.matches("\r\n").count() < expected_lines {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        reply.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    Ok(reply)
}

/// `AUTH ...` (when given) and `args`, as RESP arrays of bulk strings.
fn encode(auth: Option<&[&str]>, args: &[&str]) -> Vec<u8> {
    let mut payload = Vec::new();
    for cmd in auth.into_iter().chain([args]) {
        payload.extend(format!("*{}\r\n", cmd.len()).bytes());
        for a in cmd {
            payload.extend(format!("${}\r\n", a.len()).bytes());
            payload.extend(a.bytes());
            payload.extend(b"\r\n");
        }
    }
    payload
}

/// Does the server answer PONG (not LOADING, not an auth error)?
pub fn ping(endpoint: &Endpoint) -> bool {
    send_command(endpoint, &["PING"])
        .map(|r| r.lines().last().is_some_and(|l| l.starts_with("+PONG")))
        .unwrap_or(false)
}

/// Is the server ready for clients: PONG over RESP, or a `version` reply from memcached.
pub fn ready(endpoint: &Endpoint) -> bool {
    match endpoint.protocol {
        Protocol::Resp => ping(endpoint),
        Protocol::Memcache => memcached_version(endpoint.addr).is_some(),
    }
}

/// `SHUTDOWN NOSAVE` or `SHUTDOWN SAVE`; the connection closes without a reply when the
/// server exits, so the reply is not looked at: the caller waits for the exit.
pub fn shutdown(endpoint: Endpoint, how: StopKind) {
    let mode = match how {
        StopKind::Save => "SAVE",
        _ => "NOSAVE",
    };
    let _ = send_command(&endpoint, &["SHUTDOWN", mode]);
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

/// Length of the first complete RESP2 reply at the start of `buf`, or `None` while it is still
/// arriving.
fn reply_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let header = std::str::from_utf8(&buf[1..line_end]).ok()?;
    let after = line_end + 2;
    match buf.first()? {
        b'+' | b'-' | b':' => Some(after),
        b'$' => match header.parse::<i64>().ok()? {
            n if n < 0 => Some(after),
            n => (buf.len() >= after + n as usize + 2).then_some(after + n as usize + 2),
        },
        b'*' => {
            let mut at = after;
            for _ in 0..header.parse::<i64>().ok()?.max(0) {
                at += reply_len(&buf[at..])?;
            }
            Some(at)
        }
        _ => Some(buf.len()),
    }
}

/// One command (after AUTH when a password is set) and its whole reply, bulk strings and
/// arrays included (`send_command` reads only a line).
pub fn exchange(endpoint: &Endpoint, args: &[&str]) -> std::io::Result<Vec<u8>> {
    let mut stream = connect(endpoint, Duration::from_millis(500), Duration::from_secs(2))?;
    let auth = endpoint.auth_args();
    stream.write_all(&encode(auth.as_deref(), args))?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    let skip = |reply: &[u8]| {
        if auth.is_some() {
            reply_len(reply)
        } else {
            Some(0)
        }
    };
    loop {
        if let Some(auth) = skip(&reply) {
            if let Some(n) = reply_len(&reply[auth..]) {
                return Ok(reply[auth..auth + n].to_vec());
            }
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        reply.extend_from_slice(&buf[..n]);
    }
}

/// This host's clock minus the server's, in microseconds: `TIME` read halfway through the round
/// trip (so the error is at most half of it, which is returned too).
pub fn clock_offset_us(endpoint: &Endpoint) -> Option<(f64, f64)> {
    let now_us = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64() * 1e6)
            .unwrap_or_default()
    };
    let before = now_us();
    let reply = exchange(endpoint, &["TIME"]).ok()?;
    let after = now_us();
    // *2\r\n$10\r\n<seconds>\r\n$6\r\n<microseconds>\r\n
    let text = String::from_utf8_lossy(&reply);
    let numbers: Vec<f64> = text
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with(['*', '$']))
        .filter_map(|l| l.parse().ok())
        .collect();
    let [secs, micros] = numbers[..] else {
        return None;
    };
    Some((
        (before + after) / 2.0 - (secs * 1e6 + micros),
        (after - before) / 2.0,
    ))
}

/// The version a running server reports: `redis_version` or `valkey_version` from `INFO
/// server` (Valkey reports both; its own is preferred), memcached's `version`.
pub fn reported_version(endpoint: &Endpoint) -> Option<String> {
    if endpoint.protocol == Protocol::Memcache {
        return memcached_version(endpoint.addr);
    }
    let reply = exchange(endpoint, &["INFO", "server"]).ok()?;
    let text = String::from_utf8_lossy(&reply);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    field("valkey_version:").or_else(|| field("redis_version:"))
}

#[cfg(test)]
mod tests {
    use super::reply_len;

    #[test]
    fn whole_replies_are_measured_and_partial_ones_waited_for() {
        assert_eq!(reply_len(b"+OK\r\n"), Some(5));
        assert_eq!(reply_len(b"$3\r\nabc\r\n+OK"), Some(9));
        assert_eq!(reply_len(b"$3\r\nab"), None);
        let time = b"*2\r\n$10\r\n1700000000\r\n$6\r\n123456\r\n";
        assert_eq!(reply_len(time), Some(time.len()));
        assert_eq!(reply_len(&time[..time.len() - 3]), None);
        assert_eq!(reply_len(b"$-1\r\n"), Some(5));
    }
}
