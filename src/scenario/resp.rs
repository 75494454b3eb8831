//! A minimal RESP2 connection for the `cache-ops` hot loop: one task owns one socket, encodes a
//! batch into a reused buffer, writes it once and parses the replies in place.
//!
//! Why not the redis crate here: its `MultiplexedConnection` sends each request through a channel
//! to a driver task and back through a oneshot. Measured on 2 cores against redis 7.0 with 50
//! connections (`tests/bench/compare.sh`), that reached 0.57-0.89 of redis-benchmark's throughput;
//! this loop is what the harness needs to never be the bottleneck. The redis crate is still used
//! everywhere else (tests, verification), where convenience matters more than cycles.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where a server listens and how to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub password: Option<String>,
}

/// One reply, reduced to what the harness looks at: an integer (EXISTS, INCR), a nil, a server
/// error with its message (e.g. "OOM command not allowed ..."), or anything else that is fine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok,
    Integer(i64),
    Nil,
    Error(String),
}

pub struct RespConn {
    stream: TcpStream,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    /// Parsed up to here in `rbuf`.
    rpos: usize,
    queued: usize,
}

impl RespConn {
    pub async fn connect(endpoint: &Endpoint, timeout: Duration) -> io::Result<RespConn> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(endpoint.addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let mut conn = RespConn {
            stream,
            wbuf: Vec::with_capacity(16 * 1024),
            rbuf: vec![0; 64 * 1024],
            rpos: 0,
            queued: 0,
        };
        conn.rbuf.clear();
        if let Some(pw) = &endpoint.password {
            conn.push(&[b"AUTH", pw.as_bytes()]);
            let mut replies = Vec::with_capacity(1);
            tokio::time::timeout(timeout, conn.round_trip(&mut replies))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "AUTH timed out"))??;
            if let Some(Reply::Error(e)) = replies.first() {
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, e.clone()));
            }
        }
        Ok(conn)
    }

    /// Queue one command.
    pub fn push(&mut self, args: &[&[u8]]) {
        use std::io::Write;
        let _ = write!(self.wbuf, "*{}\r\n", args.len());
        for a in args {
            let _ = write!(self.wbuf, "${}\r\n", a.len());
            self.wbuf.extend_from_slice(a);
            self.wbuf.extend_from_slice(b"\r\n");
        }
        self.queued += 1;
    }

    /// Send every queued command in one write and read one reply for each into `out`.
    pub async fn round_trip(&mut self, out: &mut Vec<Reply>) -> io::Result<()> {
        out.clear();
        let expected = std::mem::take(&mut self.queued);
        self.stream.write_all(&self.wbuf).await?;
        self.wbuf.clear();
        while out.len() < expected {
            match parse(&self.rbuf[self.rpos..])? {
                Some((reply, used)) => {
                    self.rpos += used;
                    out.push(reply);
                }
                None => self.fill().await?,
            }
        }
        Ok(())
    }

    /// Read more bytes, first dropping what was already parsed.
    async fn fill(&mut self) -> io::Result<()> {
        if self.rpos > 0 {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        let len = self.rbuf.len();
        if self.rbuf.capacity() - len < 16 * 1024 {
            self.rbuf.reserve(64 * 1024);
        }
        let cap = self.rbuf.capacity();
        self.rbuf.resize(cap, 0);
        let n = self.stream.read(&mut self.rbuf[len..]).await;
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                self.rbuf.truncate(len);
                return Err(e);
            }
        };
        self.rbuf.truncate(len + n);
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        Ok(())
    }
}

/// Parse one reply from the start of `buf`: `Ok(None)` if it is not complete yet.
fn parse(buf: &[u8]) -> io::Result<Option<(Reply, usize)>> {
    let Some(line_end) = find_crlf(buf) else {
        return Ok(None);
    };
    let line = &buf[1..line_end];
    let after = line_end + 2;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed RESP reply");
    match buf.first() {
        Some(b'+') => Ok(Some((Reply::Ok, after))),
        Some(b':') => {
            let n: i64 = std::str::from_utf8(line)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)?;
            Ok(Some((Reply::Integer(n), after)))
        }
        Some(b'-') => Ok(Some((
            Reply::Error(String::from_utf8_lossy(line).into_owned()),
            after,
        ))),
        Some(b'$') => {
            let len: i64 = std::str::from_utf8(line)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)?;
            if len < 0 {
                return Ok(Some((Reply::Nil, after)));
            }
            let end = after + len as usize + 2;
            Ok((buf.len() >= end).then_some((Reply::Ok, end)))
        }
        Some(b'*') => {
            let n: i64 = std::str::from_utf8(line)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)?;
            let mut used = after;
            for _ in 0..n.max(0) {
                match parse(&buf[used..])? {
                    Some((_, u)) => used += u,
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Ok, used)))
        }
        _ => Err(bad()),
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_reply_kind_and_waits_for_partial_ones() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Some((Reply::Ok, 5)));
        assert_eq!(
            parse(b":42\r\nrest").unwrap(),
            Some((Reply::Integer(42), 5))
        );
        assert_eq!(parse(b"$-1\r\n").unwrap(), Some((Reply::Nil, 5)));
        assert_eq!(parse(b"$3\r\nabc\r\n").unwrap(), Some((Reply::Ok, 9)));
        assert_eq!(parse(b"$3\r\nab").unwrap(), None);
        assert_eq!(
            parse(b"*2\r\n$1\r\na\r\n:1\r\n").unwrap(),
            Some((Reply::Ok, 15))
        );
        assert_eq!(parse(b"*2\r\n$1\r\na\r\n").unwrap(), None);
        assert_eq!(
            parse(b"-OOM command not allowed\r\n").unwrap(),
            Some((Reply::Error("OOM command not allowed".into()), 26))
        );
        assert_eq!(parse(b"+OK").unwrap(), None);
        assert!(parse(b"?what\r\n").is_err());
    }
}
