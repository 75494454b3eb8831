//! What one `cache-ops` operation is: which command, which key, which value. Kept apart from the
//! driver loop so the choice logic can be tested without a server.

use std::sync::Arc;

use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::Zipf;

use crate::config::scenario_file::{KeyDistribution, OpMix};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Set,
    Del,
    Incr,
    Expire,
}

/// Operation names, indexed by `Op::index`.
pub const OP_NAMES: &[&str] = &["get", "set", "del", "incr", "expire"];

impl Op {
    pub const ALL: [Op; 5] = [Op::Get, Op::Set, Op::Del, Op::Incr, Op::Expire];

    pub fn name(self) -> &'static str {
        OP_NAMES[self.index()]
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

pub fn weights(mix: &OpMix) -> [u32; 5] {
    [mix.get, mix.set, mix.del, mix.incr, mix.expire]
}

#[derive(Clone)]
enum Keys {
    Uniform(u64),
    Zipf(Zipf<f64>),
}

/// What every connection of a run draws from, built once per run: the op weights, the key
/// distribution and one pool of random bytes that values are sliced from (shared, so memory does
/// not grow by a value pool per connection).
pub struct WorkloadSpec {
    ops: WeightedIndex<u32>,
    keys: Keys,
    value_min: usize,
    value_max: usize,
    pool: Arc<[u8]>,
}

impl WorkloadSpec {
    pub fn new(
        seed: u64,
        mix: &OpMix,
        keyspace: u64,
        distribution: KeyDistribution,
        zipf_exponent: f64,
        value_size: (usize, usize),
    ) -> Result<Self, String> {
        let ops = WeightedIndex::new(weights(mix)).map_err(|e| format!("op mix: {e}"))?;
        let keys = match distribution {
            KeyDistribution::Uniform => Keys::Uniform(keyspace),
            KeyDistribution::Zipf => Keys::Zipf(
                Zipf::new(keyspace as f64, zipf_exponent).map_err(|e| format!("zipf: {e}"))?,
            ),
        };
        let mut pool = vec![0u8; value_size.1 + 4096];
        SmallRng::seed_from_u64(seed).fill(&mut pool[..]);
        Ok(WorkloadSpec {
            ops,
            keys,
            value_min: value_size.0,
            value_max: value_size.1,
            pool: pool.into(),
        })
    }
}

/// Draws operations, keys and values for one connection. Deterministic for a given seed.
pub struct Workload {
    rng: SmallRng,
    ops: WeightedIndex<u32>,
    keys: Keys,
    value_min: usize,
    value_max: usize,
    pool: Arc<[u8]>,
    prefix: String,
    pub key_buf: String,
}

impl Workload {
    pub fn new(spec: &WorkloadSpec, seed: u64, prefix: String) -> Self {
        Workload {
            rng: SmallRng::seed_from_u64(seed),
            ops: spec.ops.clone(),
            keys: spec.keys.clone(),
            value_min: spec.value_min,
            value_max: spec.value_max,
            pool: spec.pool.clone(),
            prefix,
            key_buf: String::with_capacity(64),
        }
    }

    pub fn next_op(&mut self) -> Op {
        Op::ALL[self.ops.sample(&mut self.rng)]
    }

    /// Fills `key_buf` with the next key for `op` and returns it. Counters (INCR) live in their
    /// own key range so they never hit a string value.
    pub fn next_key(&mut self, op: Op) -> &str {
        use std::fmt::Write;
        let k = match &self.keys {
            Keys::Uniform(n) => self.rng.random_range(0..*n),
            Keys::Zipf(z) => z.sample(&mut self.rng) as u64 - 1,
        };
        self.key_buf.clear();
        let space = if op == Op::Incr { "n:" } else { "" };
        let _ = write!(self.key_buf, "{}{space}{k}", self.prefix);
        &self.key_buf
    }

    pub fn next_value(&mut self) -> &[u8] {
        let range = self.value_range();
        &self.pool[range]
    }

    fn value_range(&mut self) -> std::ops::Range<usize> {
        let len = self.rng.random_range(self.value_min..=self.value_max);
        let start = self.rng.random_range(0..self.pool.len() - len);
        start..start + len
    }

    /// The next command for `op` as RESP arguments (`ttl` is the decimal TTL in seconds), borrowed
    /// from reused buffers so the hot loop allocates nothing.
    pub fn command<'a>(&'a mut self, op: Op, ttl: Option<&'a [u8]>) -> ([&'a [u8]; 5], usize) {
        self.next_key(op);
        let value = if op == Op::Set {
            self.value_range()
        } else {
            0..0
        };
        self.args(op, value, ttl)
    }

    /// A SET of key number `key` with a value of the configured sizes, as the fill phase writes
    /// it (the same key names GET and SET draw).
    pub fn fill_command<'a>(
        &'a mut self,
        key: u64,
        ttl: Option<&'a [u8]>,
    ) -> ([&'a [u8]; 5], usize) {
        use std::fmt::Write;
        self.key_buf.clear();
        let _ = write!(self.key_buf, "{}{key}", self.prefix);
        let value = self.value_range();
        self.args(Op::Set, value, ttl)
    }

    fn args<'a>(
        &'a self,
        op: Op,
        value: std::ops::Range<usize>,
        ttl: Option<&'a [u8]>,
    ) -> ([&'a [u8]; 5], usize) {
        let key = self.key_buf.as_bytes();
        let val = &self.pool[value];
        match (op, ttl) {
            (Op::Get, _) => ([b"GET", key, b"", b"", b""], 2),
            (Op::Set, Some(ttl)) => ([b"SET", key, val, b"EX", ttl], 5),
            (Op::Set, None) => ([b"SET", key, val, b"", b""], 3),
            (Op::Del, _) => ([b"DEL", key, b"", b"", b""], 2),
            (Op::Incr, _) => ([b"INCR", key, b"", b"", b""], 2),
            (Op::Expire, ttl) => ([b"EXPIRE", key, ttl.unwrap_or(b"60"), b"", b""], 3),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(dist: KeyDistribution) -> Workload {
        let mix = OpMix {
            get: 3,
            set: 1,
            ..Default::default()
        };
        let spec = WorkloadSpec::new(7, &mix, 100, dist, 1.0, (10, 20)).unwrap();
        Workload::new(&spec, 7, "p:".into())
    }

    #[test]
    fn mix_follows_weights_and_keys_stay_in_keyspace() {
        let mut w = workload(KeyDistribution::Uniform);
        let mut gets = 0;
        for _ in 0..10_000 {
            match w.next_op() {
                Op::Get => gets += 1,
                Op::Set => {}
                other => panic!("{other:?} has weight 0"),
            }
            let key = w.next_key(Op::Get).to_string();
            let n: u64 = key.strip_prefix("p:").unwrap().parse().unwrap();
            assert!(n < 100);
            let len = w.next_value().len();
            assert!((10..=20).contains(&len));
        }
        assert!(
            (7_000..8_000).contains(&gets),
            "{gets} gets of 10000 for weight 3:1"
        );
    }

    #[test]
    fn fill_writes_the_keys_gets_read() {
        let mut w = workload(KeyDistribution::Uniform);
        let (args, n) = w.fill_command(42, None);
        assert_eq!(n, 3);
        assert_eq!((args[0], args[1]), (&b"SET"[..], &b"p:42"[..]));
        assert!((10..=20).contains(&args[2].len()));
        let (args, n) = w.fill_command(7, Some(b"60"));
        assert_eq!((n, args[3], args[4]), (5, &b"EX"[..], &b"60"[..]));
    }

    #[test]
    fn zipf_prefers_low_keys_and_incr_has_own_range() {
        let mut w = workload(KeyDistribution::Zipf);
        let zeros = (0..10_000).filter(|_| w.next_key(Op::Get) == "p:0").count();
        assert!(zeros > 1_000, "key 0 drawn {zeros} times");
        assert!(w.next_key(Op::Incr).starts_with("p:n:"));
    }
}
