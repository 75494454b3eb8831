//! Splitting a run over jobs: `--shard K/N` picks part K of the expanded cells, balanced by
//! each cell's expected duration; `--start-at` holds generators until one instant or until a
//! barrier file appears, so several hosts load one target together.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::matrix::Cell;
use crate::results::part::Part;

/// Seconds a cell is expected to take: its scenario's planned time, plus starting its server
/// (about a second) and, for HTTP scenarios, the bundled app (a few seconds on this machine).
pub fn expected_seconds(cell: &Cell) -> u64 {
    let app = if cell.scenario.needs_app() { 4 } else { 0 };
    cell.scenario.planned_seconds() + 1 + app
}

/// The cells (indices into `cells`) of part `shard`, in plan order. Longest cell first onto the
/// least-loaded shard (ties: the lower index, then the lower shard), so the split depends only on
/// the cells, never on the machine, and shards end at about the same time.
pub fn cells_of(cells: &[Cell], shard: Part) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(expected_seconds(&cells[i])), i));
    let mut load = vec![0u64; shard.of as usize];
    let mut owner = vec![0usize; cells.len()];
    for i in order {
        let (least, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(k, l)| (**l, *k))
            .expect("at least one shard");
        load[least] += expected_seconds(&cells[i]);
        owner[i] = least;
    }
    (0..cells.len())
        .filter(|&i| owner[i] + 1 == shard.index as usize)
        .collect()
}

/// When a generator starts its cells.
#[derive(Debug, Clone, PartialEq)]
pub enum StartAt {
    /// A wall-clock instant (RFC 3339, e.g. `2026-12-07T10:00:00Z`).
    Instant(chrono::DateTime<chrono::Utc>),
    /// As soon as this file exists (`file:PATH`): one `touch` releases every generator that
    /// shares the folder.
    File(PathBuf),
}

impl std::str::FromStr for StartAt {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<StartAt, String> {
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err("`file:` needs a path, e.g. file:/shared/go".into());
            }
            return Ok(StartAt::File(PathBuf::from(path)));
        }
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| StartAt::Instant(t.to_utc()))
            .map_err(|e| {
                format!("`{s}`: not an RFC 3339 instant (2026-12-07T10:00:00Z) or file:PATH ({e})")
            })
    }
}

/// The longest a generator waits for its start: past it, the others have surely gone (or never
/// will), and a run that waits forever blocks its CI job until the job's own timeout.
const LONGEST_WAIT: Duration = Duration::from_secs(24 * 3600);

impl StartAt {
    /// Wait for the start (or a signal, `cancelled`). An instant in the past starts at once and
    /// says how late it is; an instant beyond a day is refused as a typo.
    pub async fn wait(&self, cancelled: &tokio_util::sync::CancellationToken) -> Result<()> {
        match self {
            StartAt::Instant(at) => {
                let now = chrono::Utc::now();
                let wait = (*at - now).to_std().unwrap_or_default();
                if wait > LONGEST_WAIT {
                    return Err(Error::Usage(format!(
                        "--start-at {at}: more than a day from now ({now})"
                    )));
                }
                if wait.is_zero() {
                    eprintln!(
                        "--start-at {at} has passed ({} ms ago): starting now",
                        (now - *at).num_milliseconds()
                    );
                    return Ok(());
                }
                eprintln!("waiting until {at} to start ({:.1} s)", wait.as_secs_f64());
                tokio::select! {
                    _ = tokio::time::sleep(wait) => Ok(()),
                    _ = cancelled.cancelled() => Ok(()),
                }
            }
            StartAt::File(path) => {
                eprintln!("waiting for {} to exist to start", path.display());
                let started = std::time::Instant::now();
                // Polled every 2 ms: the generators' start spread is then the file system's
                // (and this poll's), a few milliseconds on one machine.
                while !path.exists() && !cancelled.is_cancelled() {
                    if started.elapsed() > LONGEST_WAIT {
                        return Err(Error::Usage(format!(
                            "--start-at file:{}: it did not appear within a day",
                            path.display()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_at_parses_instants_and_files() {
        assert_eq!(
            "file:/tmp/go".parse::<StartAt>(),
            Ok(StartAt::File("/tmp/go".into()))
        );
        assert!(matches!(
            "2026-12-07T10:00:00+01:00".parse::<StartAt>(),
            Ok(StartAt::Instant(t)) if t.to_rfc3339() == "2026-12-07T09:00:00+00:00"
        ));
        assert!("tomorrow".parse::<StartAt>().is_err());
        assert!("file:".parse::<StartAt>().is_err());
    }
}
