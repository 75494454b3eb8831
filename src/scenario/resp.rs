//! A minimal RESP2 connection for the `cache-ops` hot loop: one task owns one socket, encodes a
//! batch into a reused buffer, writes it once and parses the replies in place. Verification
//! scenarios that need the data itself (GET, HGETALL, SMEMBERS) use `query`, which keeps it.
//!
//! Why not the redis crate here: its `MultiplexedConnection` sends each request through a channel
//! to a driver task and back through a oneshot. Measured on 2 cores against redis 7.0 with 50
//! connections (`cargo bench --bench compare`), that reached 0.57-0.89 of redis-benchmark's throughput;
//! this loop is what the harness needs to never be the bottleneck. The redis crate is still used
//! everywhere else (tests, verification), where convenience matters more than cycles.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

pub use crate::server::Endpoint;

/// One reply, reduced to what the harness looks at: an integer (EXISTS, INCR), a nil, a server
/// error with its message (e.g. "OOM command not allowed ..."), or anything else that is fine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok,
    Integer(i64),
    Nil,
    Error(String),
}

/// Read buffer size; grown only for a reply larger than this.
const READ_CHUNK: usize = 64 * 1024;

/// Plain TCP, or TLS (tokio-rustls) on the `tls` transport. An enum rather than a boxed trait
/// object: the plaintext hot loop keeps its direct calls.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

pub struct RespConn {
    stream: Stream,
    wbuf: Vec<u8>,
    /// Received bytes live in `rbuf[rstart..rend]`; the rest of `rbuf` is scratch space that is
    /// never zeroed again (zeroing 64 KiB before every read cost more CPU than the read).
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    queued: usize,
}

impl RespConn {
    pub async fn connect(endpoint: &Endpoint, timeout: Duration) -> io::Result<RespConn> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(endpoint.addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let stream = match &endpoint.tls {
            None => Stream::Plain(stream),
            Some(material) => {
                let connector = tokio_rustls::TlsConnector::from(material.client_config());
                let tls = tokio::time::timeout(
                    timeout,
                    connector.connect(material.server_name(), stream),
                )
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                })??;
                Stream::Tls(Box::new(tls))
            }
        };
        let mut conn = RespConn {
            stream,
            wbuf: Vec::with_capacity(16 * 1024),
            rbuf: vec![0; READ_CHUNK],
            rstart: 0,
            rend: 0,
            queued: 0,
        };
        if let Some(auth) = endpoint.auth_args() {
            let auth: Vec<&[u8]> = auth.iter().map(|a| a.as_bytes()).collect();
            conn.push(&auth);
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
        let mut n = itoa::Buffer::new();
        self.wbuf.push(b'*');
        self.wbuf.extend_from_slice(n.format(args.len()).as_bytes());
        self.wbuf.extend_from_slice(b"\r\n");
        for a in args {
            self.wbuf.push(b'$');
            self.wbuf.extend_from_slice(n.format(a.len()).as_bytes());
            self.wbuf.extend_from_slice(b"\r\n");
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
        // TLS holds records until flushed; for plain TCP this is a no-op.
        self.stream.flush().await?;
        self.wbuf.clear();
        while out.len() < expected {
            match parse(&self.rbuf[self.rstart..self.rend])? {
                Some((reply, used)) => {
                    self.rstart += used;
                    out.push(reply);
                }
                None => self.fill().await?,
            }
        }
        Ok(())
    }

    /// Read more bytes after the unparsed ones, moving those to the front first when the free
    /// space at the end runs short.
    async fn fill(&mut self) -> io::Result<()> {
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        } else if self.rbuf.len() - self.rend < READ_CHUNK / 4 {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            self.rend -= self.rstart;
            self.rstart = 0;
        }
        if self.rbuf.len() - self.rend < READ_CHUNK / 4 {
            // A reply larger than the buffer: grow it.
            self.rbuf.resize(self.rbuf.len() + READ_CHUNK, 0);
        }
        let n = self.stream.read(&mut self.rbuf[self.rend..]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        self.rend += n;
        Ok(())
    }
}

/// A whole reply with its data, for checks that compare what a server holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Status(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Array(Vec<Value>),
    Nil,
    Error(String),
}

impl RespConn {
    /// Send one command and read its whole reply (not for hot loops: it allocates).
    pub async fn query(&mut self, args: &[&[u8]]) -> io::Result<Value> {
        debug_assert_eq!(self.queued, 0, "query after unsent pushes");
        self.push(args);
        self.queued = 0;
        self.stream.write_all(&self.wbuf).await?;
        // TLS holds records until flushed; for plain TCP this is a no-op.
        self.stream.flush().await?;
        self.wbuf.clear();
        loop {
            match parse_value(&self.rbuf[self.rstart..self.rend])? {
                Some((value, used)) => {
                    self.rstart += used;
                    return Ok(value);
                }
                None => self.fill().await?,
            }
        }
    }
}

/// Parse one whole reply from the start of `buf`: `Ok(None)` if it is not complete yet.
fn parse_value(buf: &[u8]) -> io::Result<Option<(Value, usize)>> {
    let Some(line_end) = find_crlf(buf) else {
        return Ok(None);
    };
    let line = &buf[1..line_end];
    let after = line_end + 2;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed RESP reply");
    let number = || -> io::Result<i64> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    let text = || String::from_utf8_lossy(line).into_owned();
    match buf.first() {
        Some(b'+') => Ok(Some((Value::Status(text()), after))),
        Some(b'-') => Ok(Some((Value::Error(text()), after))),
        Some(b':') => Ok(Some((Value::Integer(number()?), after))),
        Some(b'$') => {
            let len = number()?;
            if len < 0 {
                return Ok(Some((Value::Nil, after)));
            }
            let end = after + len as usize;
            Ok((buf.len() >= end + 2).then(|| (Value::Bulk(buf[after..end].to_vec()), end + 2)))
        }
        Some(b'*') => {
            let n = number()?;
            if n < 0 {
                return Ok(Some((Value::Nil, after)));
            }
            let mut items = Vec::with_capacity(n as usize);
            let mut used = after;
            for _ in 0..n {
                match parse_value(&buf[used..])? {
                    Some((v, u)) => {
                        items.push(v);
                        used += u;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Value::Array(items), used)))
        }
        _ => Err(bad()),
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
    memchr::memmem::find(buf, b"\r\n")
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

    #[test]
    fn values_keep_their_data() {
        assert_eq!(
            parse_value(b"$3\r\nabc\r\n").unwrap(),
            Some((Value::Bulk(b"abc".to_vec()), 9))
        );
        assert_eq!(
            parse_value(b"*2\r\n$1\r\na\r\n:1\r\n").unwrap(),
            Some((
                Value::Array(vec![Value::Bulk(b"a".to_vec()), Value::Integer(1)]),
                15
            ))
        );
        assert_eq!(parse_value(b"*2\r\n$1\r\na\r\n").unwrap(), None);
        assert_eq!(parse_value(b"$3\r\nabc\r").unwrap(), None);
        assert_eq!(parse_value(b"*-1\r\n").unwrap(), Some((Value::Nil, 5)));
        assert_eq!(
            parse_value(b"-ERR x\r\n").unwrap(),
            Some((Value::Error("ERR x".into()), 8))
        );
    }
}
