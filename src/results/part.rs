//! `K/N`: one part of a run split over several jobs, as `--shard K/N` (part K of the cells) or
//! `--generator I/G` (generator I of G driving the same cells against one target). Recorded in
//! `run.json`, so `cachegate merge` knows what it combines.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The most parts a run can be split into: beyond it a typo (`--shard 1/1000000`) is likelier
/// than a real plan, and each part is a job someone schedules.
pub const MAX_PARTS: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Part {
    /// 1-based: `--shard 1/3` is the first of three (as CI systems and humans count).
    pub index: u32,
    pub of: u32,
}

impl FromStr for Part {
    type Err = String;

    fn from_str(s: &str) -> Result<Part, String> {
        let usage = || format!("`{s}`: expected K/N with 1 <= K <= N <= {MAX_PARTS}, e.g. 2/3");
        let (k, n) = s.split_once('/').ok_or_else(usage)?;
        let (index, of): (u32, u32) = (
            k.trim().parse().map_err(|_| usage())?,
            n.trim().parse().map_err(|_| usage())?,
        );
        if index == 0 || index > of || of > MAX_PARTS {
            return Err(usage());
        }
        Ok(Part { index, of })
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.of)
    }
}

#[cfg(test)]
mod tests {
    use super::Part;

    #[test]
    fn parses_k_of_n_and_refuses_the_rest() {
        assert_eq!("2/3".parse(), Ok(Part { index: 2, of: 3 }));
        assert_eq!("1/1".parse::<Part>().unwrap().to_string(), "1/1");
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "-1/2", "1/20000", ""] {
            assert!(bad.parse::<Part>().is_err(), "{bad}");
        }
    }
}
