//! `cache-ops` against a Redis Cluster: every command goes to the node that owns its key's hash
//! slot (CRC16 of the key, or of its `{hash tag}`, modulo 16384), over one `RespConn` per node.
//! A `MOVED` reply updates the slot map and the command is sent again to the new owner; an `ASK`
//! reply sends it once to the importing node after `ASKING`, as the cluster specification says
//! (https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#redirection-and-resharding).
//! Only 127.0.0.1 addresses are followed: a redirection elsewhere is reported as an error.
//!
//! Commands are routed one by one, so each pipelined batch becomes one batch per node, sent to
//! all nodes at once; the replies are put back in the order the commands were queued.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures::future::join_all;

use super::memcache::MemcacheConn;
use super::resp::{Endpoint, Reply, RespConn};
use crate::server::Protocol;

/// Hash slots of a Redis Cluster.
const SLOTS: usize = 16384;
/// Redirections followed for one command before it counts as an error.
const MAX_REDIRECTS: usize = 3;

/// The slot of a key, honouring `{hash tags}` as the cluster specification defines them.
pub fn key_slot(key: &[u8]) -> u16 {
    const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);
    let hashed = match key.iter().position(|b| *b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|b| *b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    CRC.checksum(hashed) % SLOTS as u16
}

/// Which node owns each slot, and the nodes' endpoints.
#[derive(Debug, Clone)]
pub struct SlotMap {
    owner: Vec<u16>,
    pub nodes: Vec<Endpoint>,
}

impl SlotMap {
    /// Ask `seed` for the cluster's slot ranges (`CLUSTER SLOTS`, answered by every version
    /// from 3.0 on).
    pub async fn fetch(seed: &Endpoint) -> io::Result<SlotMap> {
        let ranges: Vec<redis::Value> =
            crate::server::deployment::query(seed, &redis::cmd("CLUSTER").arg("SLOTS").clone())
                .await
                .map_err(|e| io::Error::other(format!("CLUSTER SLOTS: {e}")))?;
        let mut map = SlotMap {
            owner: vec![u16::MAX; SLOTS],
            nodes: Vec::new(),
        };
        for range in ranges {
            let redis::Value::Array(fields) = range else {
                continue;
            };
            let int = |v: Option<&redis::Value>| match v {
                Some(redis::Value::Int(n)) => Some(*n),
                _ => None,
            };
            let (Some(from), Some(to)) = (int(fields.first()), int(fields.get(1))) else {
                continue;
            };
            let Some(redis::Value::Array(primary)) = fields.get(2) else {
                continue;
            };
            let Some(port) = int(primary.get(1)) else {
                continue;
            };
            let node = map.node_index(seed, port as u16);
            for slot in from as usize..=(to as usize).min(SLOTS - 1) {
                map.owner[slot] = node as u16;
            }
        }
        if let Some(slot) = map.owner.iter().position(|o| *o == u16::MAX) {
            return Err(io::Error::other(format!(
                "CLUSTER SLOTS leaves slot {slot} without an owner"
            )));
        }
        Ok(map)
    }

    /// The node's index, added if new. Every node is on 127.0.0.1 with the seed's password.
    fn node_index(&mut self, seed: &Endpoint, port: u16) -> usize {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        match self.nodes.iter().position(|n| n.addr == addr) {
            Some(i) => i,
            None => {
                self.nodes.push(Endpoint {
                    addr,
                    ..seed.clone()
                });
                self.nodes.len() - 1
            }
        }
    }

    pub fn node_for(&self, key: &[u8]) -> usize {
        self.owner[key_slot(key) as usize] as usize
    }
}

/// A redirection in an error reply: `MOVED 3999 127.0.0.1:6381` or `ASK 3999 127.0.0.1:6381`.
fn redirection(reply: &Reply) -> Option<(bool, u16, &str)> {
    let Reply::Error(e) = reply else { return None };
    let mut parts = e.split(' ');
    let moved = match parts.next()? {
        "MOVED" => true,
        "ASK" => false,
        _ => return None,
    };
    let slot = parts.next()?.parse().ok()?;
    Some((moved, slot, parts.next()?))
}

/// One connection per node, with its own copy of the slot map.
pub struct ClusterConn {
    map: SlotMap,
    conns: Vec<Option<RespConn>>,
    timeout: Duration,
    /// The queued commands: which node, and the arguments (kept to resend on a redirection).
    queued: Vec<(usize, Vec<Vec<u8>>)>,
    per_node: Vec<Vec<Reply>>,
}

impl ClusterConn {
    /// Connect to every node now, so the setup phase measures (and reports) the connects.
    pub async fn connect(map: SlotMap, timeout: Duration) -> io::Result<ClusterConn> {
        let mut conns = Vec::with_capacity(map.nodes.len());
        for node in &map.nodes {
            conns.push(Some(RespConn::connect(node, timeout).await?));
        }
        let per_node = vec![Vec::new(); map.nodes.len()];
        Ok(ClusterConn {
            map,
            conns,
            timeout,
            queued: Vec::new(),
            per_node,
        })
    }

    pub fn push(&mut self, args: &[&[u8]]) {
        let node = self.map.node_for(args[1]);
        self.queued
            .push((node, args.iter().map(|a| a.to_vec()).collect()));
    }

    /// Send the queued commands, a batch per node and all nodes at once, then follow any
    /// redirections; `out` gets one reply per command in the order they were queued.
    pub async fn round_trip(&mut self, out: &mut Vec<Reply>) -> io::Result<()> {
        out.clear();
        let queued = std::mem::take(&mut self.queued);
        for (node, args) in &queued {
            let conn = self.conn(*node).await?;
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            conn.push(&refs);
        }
        let results = join_all(
            self.conns
                .iter_mut()
                .zip(self.per_node.iter_mut())
                .filter_map(|(c, replies)| c.as_mut().map(|c| c.round_trip(replies))),
        )
        .await;
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            return Err(e);
        }
        let mut next = vec![0usize; self.per_node.len()];
        for (node, _) in &queued {
            let reply = std::mem::replace(&mut self.per_node[*node][next[*node]], Reply::Nil);
            next[*node] += 1;
            out.push(reply);
        }
        for (i, (_, args)) in queued.iter().enumerate() {
            if redirection(&out[i]).is_some() {
                out[i] = self.follow(args, out[i].clone()).await?;
            }
        }
        Ok(())
    }

    /// Resend one redirected command until it is answered without a redirection.
    async fn follow(&mut self, args: &[Vec<u8>], mut reply: Reply) -> io::Result<Reply> {
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        for _ in 0..MAX_REDIRECTS {
            let Some((moved, slot, addr)) = redirection(&reply) else {
                return Ok(reply);
            };
            let Some(port) = addr
                .strip_prefix("127.0.0.1:")
                .and_then(|p| p.parse::<u16>().ok())
            else {
                // Never follow a redirection away from loopback.
                return Ok(reply);
            };
            let seed = self.map.nodes[0].clone();
            let node = self.map.node_index(&seed, port);
            if moved {
                self.map.owner[slot as usize] = node as u16;
            }
            let conn = self.conn(node).await?;
            let mut replies = Vec::with_capacity(2);
            if !moved {
                conn.push(&[b"ASKING"]);
            }
            conn.push(&refs);
            conn.round_trip(&mut replies).await?;
            reply = replies.pop().unwrap_or(Reply::Nil);
        }
        Ok(reply)
    }

    /// The node's connection, opened if it is new or was lost.
    async fn conn(&mut self, node: usize) -> io::Result<&mut RespConn> {
        if self.conns.len() <= node {
            self.conns.resize_with(node + 1, || None);
            self.per_node.resize_with(node + 1, Vec::new);
        }
        if self.conns[node].is_none() {
            let c = RespConn::connect(&self.map.nodes[node], self.timeout).await?;
            self.conns[node] = Some(c);
        }
        Ok(self.conns[node].as_mut().expect("connected above"))
    }
}

/// Where `cache-ops` sends its commands: one server, or a cluster routed by slot.
#[derive(Debug, Clone)]
pub enum Target {
    Single(Endpoint),
    Cluster(SlotMap),
}

/// A connection to a `Target`.
pub enum Conn {
    Single(RespConn),
    Cluster(ClusterConn),
    /// memcached's text protocol (`memcache.rs`).
    Memcache(MemcacheConn),
}

impl Conn {
    pub async fn connect(target: &Target, timeout: Duration) -> io::Result<Conn> {
        Ok(match target {
            Target::Single(e) if e.protocol == Protocol::Memcache => {
                Conn::Memcache(MemcacheConn::connect(e, timeout).await?)
            }
            Target::Single(e) => Conn::Single(RespConn::connect(e, timeout).await?),
            Target::Cluster(map) => {
                Conn::Cluster(ClusterConn::connect(map.clone(), timeout).await?)
            }
        })
    }

    pub fn push(&mut self, args: &[&[u8]]) {
        match self {
            Conn::Single(c) => c.push(args),
            Conn::Cluster(c) => c.push(args),
            Conn::Memcache(c) => c.push(args),
        }
    }

    pub async fn round_trip(&mut self, out: &mut Vec<Reply>) -> io::Result<()> {
        match self {
            Conn::Single(c) => c.round_trip(out).await,
            Conn::Cluster(c) => c.round_trip(out).await,
            Conn::Memcache(c) => c.round_trip(out).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_cluster_specification() {
        // The specification's own examples: CRC16("123456789") = 0x31C3, and hash tags.
        assert_eq!(key_slot(b"123456789"), 0x31C3); // 12739, below 16384
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }

    #[test]
    fn redirections_are_read_from_error_replies() {
        let moved = Reply::Error("MOVED 3999 127.0.0.1:6381".into());
        assert_eq!(redirection(&moved), Some((true, 3999, "127.0.0.1:6381")));
        let ask = Reply::Error("ASK 12 127.0.0.1:7000".into());
        assert_eq!(redirection(&ask), Some((false, 12, "127.0.0.1:7000")));
        assert_eq!(redirection(&Reply::Error("OOM".into())), None);
    }
}
