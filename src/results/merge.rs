//! `cachegate merge`: several run folders combined into one run, so one report, one set of gates
//! and one baseline comparison cover a run that was split over jobs. Two splits are merged:
//!
//! - shards (`run --shard K/N`): each holds different cells; the merged run has every cell of the
//!   whole plan in its order, and a missing shard leaves its cells "not run" (the run failed);
//! - generators (`run --generator I/G`): each drove the same cells at one target; the merged
//!   cell adds their HDR histograms (the percentiles of every sample, not an average of
//!   percentiles) and their throughput, and says how far apart they started and how far apart
//!   their clocks were.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::latency::{self, LatencySummary};
use super::part::Part;
use super::store::{PlannedCell, RunEnd, RunInfo, RunOutcome};
use super::{CellResult, OpStats, RunDir, TimelinePoint};
use crate::error::{Error, Result};

/// What a cell merged from generators was made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generators {
    /// G of `--generator I/G`.
    pub of: u32,
    /// The generators whose results were merged (1-based).
    pub merged: Vec<u32>,
    /// Generators with no result for this cell (their run folder was not given, or it stopped
    /// before the cell): the merged load is short of theirs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<u32>,
    /// Latest minus earliest start of the cell across the generators.
    pub start_spread_ms: f64,
    /// Largest minus smallest offset of a generator's clock from the target server's, when
    /// every generator measured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_spread_ms: Option<f64>,
}

impl Generators {
    /// One line for the report.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "merged from {} of {} generators; started {:.1} ms apart",
            self.merged.len(),
            self.of,
            self.start_spread_ms
        );
        if let Some(c) = self.clock_spread_ms {
            s.push_str(&format!(
                "; clocks {c:.1} ms apart (against the server's TIME)"
            ));
        }
        if !self.missing.is_empty() {
            let missing: Vec<String> = self.missing.iter().map(|g| g.to_string()).collect();
            s.push_str(&format!("; generator {} missing", missing.join(", ")));
        }
        s
    }
}

/// One run folder given to `merge`.
struct Source {
    dir: RunDir,
    info: RunInfo,
    results: Vec<CellResult>,
}

/// How the sources split their run.
enum Split {
    Shards(u32),
    Generators(u32),
}

pub struct Merged {
    pub run_dir: RunDir,
    /// What was read around (a cut-off last line in a source).
    pub warnings: Vec<String>,
}

/// Merge the run folders `paths` into a new run folder under `out`. Folders that are not parts
/// of one split run (a shard of another plan, the same part twice, a run that was not split)
/// are bad input; parts that are missing make the merged run end as failed, naming them.
pub fn merge(paths: &[PathBuf], out: &Path, command: Vec<String>) -> Result<Merged> {
    let mut warnings = vec![];
    let mut sources = vec![];
    for path in paths {
        let dir = RunDir::open(path)?;
        let info = dir.read_info().ok_or_else(|| {
            Error::Usage(format!("{}: it has no readable run.json", path.display()))
        })?;
        let read = dir.read_results()?;
        warnings.extend(read.cut_off);
        sources.push(Source {
            dir,
            info,
            results: read.results,
        });
    }
    let split = split_of(&sources)?;
    let first = &sources[0].info;
    let name = sources
        .iter()
        .flat_map(|s| s.results.first())
        .map(|r| r.matrix.clone())
        .next()
        .unwrap_or_else(|| "run".into());
    let run_dir = RunDir::create(out, &format!("merged-{name}"))?;
    let id = run_dir.id();
    let mut results = vec![];
    let (planned, missing) = match split {
        Split::Shards(of) => {
            let whole = first.shard.as_ref().expect("a shard").whole.clone();
            for s in &sources {
                results.extend(s.results.iter().map(|r| from_source(r, s, &id)));
            }
            let position: HashMap<(&str, u32), usize> = whole
                .iter()
                .enumerate()
                .map(|(i, p)| ((p.cell_id.as_str(), p.repeat), i))
                .collect();
            results.sort_by_key(|r: &CellResult| {
                position.get(&(r.cell_id.as_str(), r.repeat)).copied()
            });
            let missing = missing_parts(&sources, of, |i| i.shard.as_ref().map(|s| s.part));
            let missing: Vec<String> = missing.iter().map(|k| format!("shard {k}/{of}")).collect();
            (whole, missing)
        }
        Split::Generators(of) => {
            let planned = first.planned.clone();
            for p in &planned {
                let parts: Vec<(u32, CellResult)> = sources
                    .iter()
                    .filter_map(|s| {
                        let r = s
                            .results
                            .iter()
                            .find(|r| r.cell_id == p.cell_id && r.repeat == p.repeat)?;
                        Some((s.info.generator?.index, from_source(r, s, &id)))
                    })
                    .collect();
                if !parts.is_empty() {
                    results.push(merge_generators(parts, of)?);
                }
            }
            let missing = missing_parts(&sources, of, |i| i.generator);
            let missing: Vec<String> = missing
                .iter()
                .map(|g| format!("generator {g}/{of}"))
                .collect();
            (planned, missing)
        }
    };
    copy_logs(&sources, &run_dir)?;
    run_dir.write_info(&RunInfo {
        run_id: id.clone(),
        started_at: sources
            .iter()
            .map(|s| s.info.started_at)
            .min()
            .expect("a source"),
        command,
        matrices: first.matrices.clone(),
        cells: planned.len(),
        cachegate_version: env!("CARGO_PKG_VERSION").to_string(),
        host: first.host.clone(),
        planned,
        end: Some(merged_end(&sources, &missing)),
        report: first.report.clone(),
        resume: None,
        shard: None,
        generator: None,
        merged_from: sources.iter().map(|s| s.dir.id()).collect(),
    })?;
    for r in &results {
        run_dir.append(r)?;
    }
    Ok(Merged { run_dir, warnings })
}

/// Check that the sources are parts of one split run and say which split.
fn split_of(sources: &[Source]) -> Result<Split> {
    let shown = |s: &Source| s.dir.path.display().to_string();
    let first = &sources[0];
    let split = match (&first.info.shard, first.info.generator) {
        (Some(shard), _) => Split::Shards(shard.part.of),
        (None, Some(g)) => Split::Generators(g.of),
        (None, None) => {
            return Err(Error::Usage(format!(
                "{} was not run with --shard or --generator: it is a whole run already",
                shown(first)
            )))
        }
    };
    let mut seen: BTreeMap<u32, &Source> = BTreeMap::new();
    for s in sources {
        let part = match (&split, &s.info.shard, s.info.generator) {
            (Split::Shards(of), Some(shard), _) if shard.part.of == *of => {
                if shard.whole != first.info.shard.as_ref().expect("a shard").whole {
                    return Err(Error::Usage(format!(
                        "{} is a shard of another plan than {} (other cells, or another matrix \
                         version): merge shards of one run",
                        shown(s),
                        shown(first)
                    )));
                }
                shard.part
            }
            (Split::Generators(of), None, Some(g)) if g.of == *of => {
                if !same_cells(&s.info.planned, &first.info.planned) {
                    return Err(Error::Usage(format!(
                        "{} drove other cells than {}: generators of one cell run the same matrix",
                        shown(s),
                        shown(first)
                    )));
                }
                g
            }
            _ => {
                return Err(Error::Usage(format!(
                    "{} is {} but {} is {}: merge the shards of one run, or the generators of one",
                    shown(s),
                    s.info.part_label(),
                    shown(first),
                    first.info.part_label()
                )));
            }
        };
        if let Some(other) = seen.insert(part.index, s) {
            return Err(Error::Usage(format!(
                "{} and {} are both part {part}: each part is merged once",
                shown(other),
                shown(s)
            )));
        }
    }
    Ok(split)
}

/// The same cells planned, fingerprints aside (each generator expands its own matrix copy).
fn same_cells(a: &[PlannedCell], b: &[PlannedCell]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.cell_id == y.cell_id && x.repeat == y.repeat)
}

fn missing_parts(sources: &[Source], of: u32, part: impl Fn(&RunInfo) -> Option<Part>) -> Vec<u32> {
    (1..=of)
        .filter(|k| {
            !sources
                .iter()
                .any(|s| part(&s.info).map(|p| p.index) == Some(*k))
        })
        .collect()
}

/// The merged run ends as its parts did: failed if a part is missing or failed, interrupted if
/// one was interrupted (or never recorded an end: it was killed).
fn merged_end(sources: &[Source], missing: &[String]) -> RunEnd {
    let finished_at = chrono::Utc::now();
    if !missing.is_empty() {
        return RunEnd {
            outcome: RunOutcome::Failed,
            signal: None,
            message: Some(format!(
                "{} not given to merge: its cells did not run or are not counted",
                missing.join(", ")
            )),
            finished_at,
        };
    }
    for s in sources {
        let part = s.info.part_label();
        match &s.info.end {
            Some(end) if end.outcome == RunOutcome::Completed => {}
            Some(end) => {
                return RunEnd {
                    message: Some(format!("{part} {}", end.describe())),
                    finished_at,
                    ..end.clone()
                }
            }
            None => {
                return RunEnd {
                    outcome: RunOutcome::Failed,
                    signal: None,
                    message: Some(format!(
                        "{part} ({}) never recorded its end: it was killed",
                        s.dir.id()
                    )),
                    finished_at,
                }
            }
        }
    }
    RunEnd {
        outcome: RunOutcome::Completed,
        signal: None,
        message: None,
        finished_at,
    }
}

/// A source's result as part of the merged run: its logs now under `logs/SOURCE_ID/`.
fn from_source(r: &CellResult, s: &Source, merged_id: &str) -> CellResult {
    let source = s.dir.id();
    let mut r = r.clone();
    r.source_run = Some(source.clone());
    r.run_id = merged_id.to_string();
    let moved = |log: &mut Option<String>| {
        if let Some(l) = log.as_mut() {
            if let Some(rest) = l.strip_prefix("logs/") {
                *l = format!("logs/{source}/{rest}");
            }
        }
    };
    if let Some(server) = r.server.as_mut() {
        moved(&mut server.log);
        for node in server.topology.iter_mut().flat_map(|t| t.nodes.iter_mut()) {
            moved(&mut node.log);
        }
    }
    r
}

fn copy_logs(sources: &[Source], run_dir: &RunDir) -> Result<()> {
    for s in sources {
        let from = s.dir.path.join("logs");
        if from.is_dir() {
            let to = run_dir.path.join("logs").join(s.dir.id());
            copy_tree(&from, &to).map_err(|e| {
                Error::io(format!("copying {} to {}", from.display(), to.display()), e)
            })?;
        }
    }
    Ok(())
}

/// Copy a folder's files and folders (no symlinks: a run folder has none, and following one
/// could copy from outside it).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

/// One cell from each generator's result, as one cell: counts, throughput and histograms added.
pub fn merge_generators(mut parts: Vec<(u32, CellResult)>, of: u32) -> Result<CellResult> {
    parts.sort_by_key(|(g, _)| *g);
    let (_, mut out) = parts[0].clone();
    let results: Vec<&CellResult> = parts.iter().map(|(_, r)| r).collect();
    let worst = results
        .iter()
        .max_by_key(|r| r.verdict.severity())
        .expect("a part");
    out.verdict = worst.verdict;
    let reasons: Vec<&str> = dedup(results.iter().map(|r| r.verdict_reason.as_str()));
    out.verdict_reason = match reasons.as_slice() {
        [one] => one.to_string(),
        _ => parts
            .iter()
            .map(|(g, r)| format!("generator {g}: {}", r.verdict_reason))
            .collect::<Vec<_>>()
            .join("; "),
    };
    out.infra_error = results.iter().find_map(|r| r.infra_error.clone());
    out.started_at = results.iter().map(|r| r.started_at).min().expect("a part");
    out.finished_at = results.iter().map(|r| r.finished_at).max().expect("a part");
    // The generators measured at the same time: the window is the longest of theirs, and the
    // throughput the sum of each generator's.
    out.measured_seconds = results
        .iter()
        .map(|r| r.measured_seconds)
        .fold(0.0, f64::max);
    out.counts = Default::default();
    out.errors = vec![];
    out.timeline = vec![];
    out.http_status.clear();
    out.app_exceptions = vec![];
    out.harness_cpu_seconds = 0.0;
    let mut ops: Vec<Vec<&OpStats>> = vec![];
    for r in &results {
        out.counts.sent += r.counts.sent;
        out.counts.ok += r.counts.ok;
        out.counts.errors += r.counts.errors;
        out.counts.warmup += r.counts.warmup;
        out.harness_cpu_seconds += r.harness_cpu_seconds;
        for e in &r.errors {
            match out.errors.iter_mut().find(|x| x.kind == e.kind) {
                Some(x) => x.count += e.count,
                None => out.errors.push(e.clone()),
            }
        }
        for (status, n) in &r.http_status {
            *out.http_status.entry(status.clone()).or_default() += n;
        }
        for e in &r.app_exceptions {
            match out
                .app_exceptions
                .iter_mut()
                .find(|x| x.signature == e.signature)
            {
                Some(x) => x.count += e.count,
                None => out.app_exceptions.push(e.clone()),
            }
        }
        for o in &r.ops {
            match ops.iter_mut().find(|list| list[0].op == o.op) {
                Some(list) => list.push(o),
                None => ops.push(vec![o]),
            }
        }
        merge_timeline(&mut out.timeline, &r.timeline);
    }
    out.errors.sort_by_key(|e| std::cmp::Reverse(e.count));
    out.app_exceptions
        .sort_by_key(|e| std::cmp::Reverse(e.count));
    out.ops = ops
        .into_iter()
        .map(|list| merge_op(&list, &out.cell_id))
        .collect::<Result<_>>()?;
    if out.server_log_tail.is_empty() {
        if let Some(r) = results.iter().find(|r| !r.server_log_tail.is_empty()) {
            out.server_log_tail = r.server_log_tail.clone();
        }
    }
    let ms = |d: chrono::TimeDelta| d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
    let starts = results.iter().map(|r| r.started_at);
    let offsets: Option<Vec<f64>> = results.iter().map(|r| r.clock_offset_ms).collect();
    out.generators = Some(Generators {
        of,
        merged: parts.iter().map(|(g, _)| *g).collect(),
        missing: (1..=of)
            .filter(|g| !parts.iter().any(|(p, _)| p == g))
            .collect(),
        start_spread_ms: ms(starts.clone().max().expect("a part") - starts.min().expect("a part")),
        clock_spread_ms: offsets.map(|o| {
            o.iter().cloned().fold(f64::MIN, f64::max) - o.iter().cloned().fold(f64::MAX, f64::min)
        }),
    });
    out.clock_offset_ms = None;
    out.source_run = None;
    Ok(out)
}

fn dedup<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = vec![];
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// One operation's statistics over every generator: the histograms added value by value.
fn merge_op(list: &[&OpStats], cell: &str) -> Result<OpStats> {
    let mut h = latency::new_histogram();
    for o in list {
        let part = latency::decode(&o.histogram)
            .map_err(|e| Error::Usage(format!("cell {cell}, operation {}: {e}", o.op)))?;
        h.add(&part).map_err(|e| {
            Error::Usage(format!(
                "cell {cell}, operation {}: merging histograms: {e:?}",
                o.op
            ))
        })?;
    }
    let sum = |f: fn(&OpStats) -> Option<u64>| -> Option<u64> {
        list.iter().map(|o| f(o)).sum::<Option<u64>>()
    };
    Ok(OpStats {
        op: list[0].op.clone(),
        ok: list.iter().map(|o| o.ok).sum(),
        errors: list.iter().map(|o| o.errors).sum(),
        throughput: list.iter().map(|o| o.throughput).sum(),
        latency: LatencySummary::of(&h),
        histogram: latency::encode(&h),
        // Only summaries of these are kept: the merged values are each the worst generator's
        // (an upper bound), the counts summed.
        failed_latency: worst_of(list.iter().filter_map(|o| o.failed_latency.as_ref())),
        latency_with_failures: worst_of(
            list.iter().filter_map(|o| o.latency_with_failures.as_ref()),
        ),
        hits: sum(|o| o.hits),
        misses: sum(|o| o.misses),
    })
}

fn worst_of<'a>(summaries: impl Iterator<Item = &'a LatencySummary>) -> Option<LatencySummary> {
    summaries.fold(None, |acc: Option<LatencySummary>, s| {
        Some(match acc {
            None => s.clone(),
            Some(a) => LatencySummary {
                count: a.count + s.count,
                min_us: a.min_us.min(s.min_us),
                mean_us: a.mean_us.max(s.mean_us),
                p50_us: a.p50_us.max(s.p50_us),
                p90_us: a.p90_us.max(s.p90_us),
                p99_us: a.p99_us.max(s.p99_us),
                p999_us: a.p999_us.max(s.p999_us),
                max_us: a.max_us.max(s.max_us),
            },
        })
    })
}

/// Seconds summed across generators (their seconds count from each one's own start, which
/// `start_spread_ms` bounds); per-second percentiles are the worst generator's.
fn merge_timeline(into: &mut Vec<TimelinePoint>, from: &[TimelinePoint]) {
    for p in from {
        match into.iter_mut().find(|x| x.second == p.second) {
            Some(x) => {
                x.ok += p.ok;
                x.errors += p.errors;
                x.warmup |= p.warmup;
                x.p50_us = x.p50_us.max(p.p50_us);
                x.p99_us = x.p99_us.max(p.p99_us);
            }
            None => into.push(p.clone()),
        }
    }
    into.sort_by_key(|p| p.second);
}
