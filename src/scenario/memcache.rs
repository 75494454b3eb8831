//! A minimal memcached text-protocol connection for the `cache-ops` hot loop, with the same shape
//! as the RESP one (`push` a command, `round_trip` a pipelined batch, one `Reply` per command), so
//! the workload, histograms and error kinds are shared. memcached answers pipelined requests in
//! order (protocol.txt), so a batch is one write and one read loop.
//!
//! The workload's commands map onto the protocol (memcached's `protocol.txt`):
//! - `GET k` → `get k`: `VALUE ... END` is a hit, a bare `END` a miss (nil);
//! - `SET k v [EX t]` → `set k 0 t len` + data: `STORED`;
//! - `DEL k` → `delete k`: `DELETED` (1) / `NOT_FOUND` (0);
//! - `INCR k` → `add k 0 0 1` + `0`, then `incr k 1`: memcached's incr does not create a missing
//!   key as Redis's INCR does, so the counter is added first (NOT_STORED when it exists) and the
//!   op's reply is incr's new value;
//! - `EXPIRE k t` → `touch k t`: `TOUCHED` (1) / `NOT_FOUND` (0).
//!
//! `ERROR`, `CLIENT_ERROR ...` and `SERVER_ERROR ...` (e.g. `SERVER_ERROR out of memory storing
//! object`) are server errors, grouped by their first word like RESP errors.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::resp::{Endpoint, Reply};

const READ_CHUNK: usize = 64 * 1024;

pub struct MemcacheConn {
    stream: TcpStream,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// Protocol replies each queued command reads (2 for INCR: add, then incr).
    queued: Vec<u8>,
}

impl MemcacheConn {
    pub async fn connect(endpoint: &Endpoint, timeout: Duration) -> io::Result<MemcacheConn> {
        if endpoint.password.is_some() {
            // The text protocol has no authentication (SASL needs the binary protocol).
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "memcached's text protocol has no password authentication",
            ));
        }
        let stream = tokio::time::timeout(timeout, TcpStream::connect(endpoint.addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(MemcacheConn {
            stream,
            wbuf: Vec::with_capacity(16 * 1024),
            rbuf: vec![0; READ_CHUNK],
            rstart: 0,
            rend: 0,
            queued: Vec::with_capacity(64),
        })
    }

    /// Queue one workload command, written as RESP-style arguments (`SET key value EX ttl`).
    pub fn push(&mut self, args: &[&[u8]]) {
        let replies = encode(&mut self.wbuf, args);
        self.queued.push(replies);
    }

    /// Send every queued command in one write and read one reply for each into `out`.
    pub async fn round_trip(&mut self, out: &mut Vec<Reply>) -> io::Result<()> {
        out.clear();
        let queued = std::mem::take(&mut self.queued);
        self.stream.write_all(&self.wbuf).await?;
        self.wbuf.clear();
        for replies in &queued {
            let mut last = Reply::Ok;
            let mut first_error = None;
            for _ in 0..*replies {
                let reply = loop {
                    match parse(&self.rbuf[self.rstart..self.rend])? {
                        Some((reply, used)) => {
                            self.rstart += used;
                            break reply;
                        }
                        None => self.fill().await?,
                    }
                };
                if let (Reply::Error(_), None) = (&reply, &first_error) {
                    first_error = Some(reply.clone());
                }
                last = reply;
            }
            out.push(first_error.unwrap_or(last));
        }
        self.queued = queued;
        self.queued.clear();
        Ok(())
    }

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

/// Write one command's requests into `buf`; returns how many replies they produce.
fn encode(buf: &mut Vec<u8>, args: &[&[u8]]) -> u8 {
    let key = args.get(1).copied().unwrap_or_default();
    let line = |buf: &mut Vec<u8>, parts: &[&[u8]]| {
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                buf.push(b' ');
            }
            buf.extend_from_slice(p);
        }
        buf.extend_from_slice(b"\r\n");
    };
    let storage = |buf: &mut Vec<u8>, verb: &[u8], value: &[u8], ttl: &[u8]| {
        let mut len = itoa::Buffer::new();
        line(
            buf,
            &[verb, key, b"0", ttl, len.format(value.len()).as_bytes()],
        );
        buf.extend_from_slice(value);
        buf.extend_from_slice(b"\r\n");
    };
    match args.first().copied().unwrap_or_default() {
        b"GET" => line(buf, &[b"get", key]),
        b"SET" => {
            let value = args.get(2).copied().unwrap_or_default();
            let ttl = match args.get(3).copied() {
                Some(b"EX") => args.get(4).copied().unwrap_or(b"0"),
                _ => b"0",
            };
            storage(buf, b"set", value, ttl);
        }
        b"DEL" => line(buf, &[b"delete", key]),
        b"INCR" => {
            storage(buf, b"add", b"0", b"0");
            line(buf, &[b"incr", key, b"1"]);
            return 2;
        }
        b"EXPIRE" => {
            let ttl = args.get(2).copied().unwrap_or(b"0");
            line(buf, &[b"touch", key, ttl]);
        }
        other => {
            // Not a workload command: sent as a raw line so the server's ERROR shows it.
            line(buf, &[other, key]);
        }
    }
    1
}

/// Parse one reply from the start of `buf`: `Ok(None)` if it is not complete yet.
fn parse(buf: &[u8]) -> io::Result<Option<(Reply, usize)>> {
    let Some(line_end) = memchr::memmem::find(buf, b"\r\n") else {
        return Ok(None);
    };
    let line = &buf[..line_end];
    let after = line_end + 2;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed memcached reply");
    let text = |l: &[u8]| String::from_utf8_lossy(l).into_owned();
    match line {
        b"END" => Ok(Some((Reply::Nil, after))),
        b"STORED" | b"NOT_STORED" | b"OK" => Ok(Some((Reply::Ok, after))),
        b"DELETED" | b"TOUCHED" => Ok(Some((Reply::Integer(1), after))),
        b"NOT_FOUND" => Ok(Some((Reply::Integer(0), after))),
        b"EXISTS" => Ok(Some((Reply::Ok, after))),
        b"ERROR" => Ok(Some((Reply::Error("ERROR".into()), after))),
        l if l.starts_with(b"CLIENT_ERROR") || l.starts_with(b"SERVER_ERROR") => {
            Ok(Some((Reply::Error(text(l)), after)))
        }
        l if l.starts_with(b"VALUE ") => {
            // VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n
            let len: usize = std::str::from_utf8(l)
                .ok()
                .and_then(|s| s.split_whitespace().nth(3))
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)?;
            let end = after + len + 2 + b"END\r\n".len();
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 5..end] != b"END\r\n" {
                return Err(bad());
            }
            Ok(Some((Reply::Ok, end)))
        }
        l if !l.is_empty() && l.iter().all(u8::is_ascii_digit) => {
            let n: i64 = std::str::from_utf8(l)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)?;
            Ok(Some((Reply::Integer(n), after)))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_commands_become_memcached_requests() {
        let mut buf = vec![];
        assert_eq!(encode(&mut buf, &[b"GET", b"k"]), 1);
        assert_eq!(encode(&mut buf, &[b"SET", b"k", b"v\r\n", b"EX", b"30"]), 1);
        assert_eq!(encode(&mut buf, &[b"SET", b"k", b"vv"]), 1);
        assert_eq!(encode(&mut buf, &[b"DEL", b"k"]), 1);
        assert_eq!(encode(&mut buf, &[b"INCR", b"n"]), 2);
        assert_eq!(encode(&mut buf, &[b"EXPIRE", b"k", b"60"]), 1);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "get k\r\nset k 0 30 3\r\nv\r\n\r\nset k 0 0 2\r\nvv\r\ndelete k\r\n\
             add n 0 0 1\r\n0\r\nincr n 1\r\ntouch k 60\r\n"
        );
    }

    #[test]
    fn parses_every_reply_and_waits_for_partial_ones() {
        assert_eq!(parse(b"END\r\n").unwrap(), Some((Reply::Nil, 5)));
        let hit = b"VALUE k 0 3\r\nabc\r\nEND\r\n";
        assert_eq!(parse(hit).unwrap(), Some((Reply::Ok, hit.len())));
        assert_eq!(parse(&hit[..hit.len() - 2]).unwrap(), None);
        assert_eq!(parse(b"STORED\r\n").unwrap(), Some((Reply::Ok, 8)));
        assert_eq!(parse(b"DELETED\r\n").unwrap(), Some((Reply::Integer(1), 9)));
        assert_eq!(
            parse(b"NOT_FOUND\r\n").unwrap(),
            Some((Reply::Integer(0), 11))
        );
        assert_eq!(parse(b"42\r\n").unwrap(), Some((Reply::Integer(42), 4)));
        assert_eq!(
            parse(b"SERVER_ERROR out of memory storing object\r\n").unwrap(),
            Some((
                Reply::Error("SERVER_ERROR out of memory storing object".into()),
                43
            ))
        );
        assert_eq!(parse(b"STOR").unwrap(), None);
        assert!(parse(b"what\r\n").is_err());
    }
}
