//! Recording what a scenario measures: per-operation HDR histograms, ok/error counts and error
//! kinds (`Recorder`, one per connection or user so the hot path takes no lock, merged at the end),
//! and a per-second timeline (`Timeline`, shared, handed a second at a time).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use hdrhistogram::Histogram;

use super::failure::Failure;
use super::latency::{encode, new_histogram, record_ns};
use super::{ErrorCount, LatencySummary, OpStats, TimelinePoint};

pub struct Recorder {
    names: &'static [&'static str],
    hist: Vec<Histogram<u64>>,
    /// Failed operations' latency, per operation (only those recorded with `failed`).
    failed_hist: Vec<Histogram<u64>>,
    ok: Vec<u64>,
    errors: Vec<u64>,
    /// Keyed by the failure itself (no string built per error of the usual kinds); named when
    /// summarized.
    error_kinds: HashMap<Failure, (u64, String)>,
    // The second being filled for the timeline.
    second: u64,
    second_ok: u64,
    second_errors: u64,
    second_hist: Histogram<u64>,
    /// Per op, for lookups only: whether the key was there, with separate latencies.
    lookups: Vec<Option<Box<Lookups>>>,
}

/// Hits and misses of one lookup op, each with its own histogram.
struct Lookups {
    hits: u64,
    misses: u64,
    hit_hist: Histogram<u64>,
    miss_hist: Histogram<u64>,
}

impl Lookups {
    fn new() -> Box<Self> {
        Box::new(Lookups {
            hits: 0,
            misses: 0,
            hit_hist: new_histogram(),
            miss_hist: new_histogram(),
        })
    }
}

impl Recorder {
    /// A recorder for operations named `names` (indexes into it identify operations).
    pub fn new(names: &'static [&'static str]) -> Self {
        Recorder {
            names,
            hist: names.iter().map(|_| new_histogram()).collect(),
            failed_hist: names.iter().map(|_| new_histogram()).collect(),
            ok: vec![0; names.len()],
            errors: vec![0; names.len()],
            error_kinds: HashMap::new(),
            second: 0,
            second_ok: 0,
            second_errors: 0,
            second_hist: new_histogram(),
            lookups: names.iter().map(|_| None).collect(),
        }
    }

    #[inline]
    pub fn ok(&mut self, op: usize, latency_ns: u64) {
        self.ok[op] += 1;
        self.second_ok += 1;
        record_ns(&mut self.hist[op], latency_ns);
        record_ns(&mut self.second_hist, latency_ns);
    }

    /// A successful lookup: counted and timed like `ok`, and also as a hit or a miss.
    #[inline]
    pub fn lookup(&mut self, op: usize, latency_ns: u64, hit: bool) {
        self.ok(op, latency_ns);
        let l = self.lookups[op].get_or_insert_with(Lookups::new);
        if hit {
            l.hits += 1;
            record_ns(&mut l.hit_hist, latency_ns);
        } else {
            l.misses += 1;
            record_ns(&mut l.miss_hist, latency_ns);
        }
    }

    /// Count an error of `kind`; `message` is kept (built only) for the first of each kind.
    pub fn error(&mut self, op: usize, kind: Failure, message: impl FnOnce() -> String) {
        self.errors[op] += 1;
        self.second_errors += 1;
        self.error_kinds
            .entry(kind)
            .or_insert_with(|| (0, message()))
            .0 += 1;
    }

    /// `error`, for a failure that took `latency_ns` (an error answer, a timeout): what the user
    /// waited is kept in the operation's failed-latency histogram.
    pub fn failed(
        &mut self,
        op: usize,
        latency_ns: u64,
        kind: Failure,
        message: impl FnOnce() -> String,
    ) {
        record_ns(&mut self.failed_hist[op], latency_ns);
        self.error(op, kind, message);
    }

    pub fn ok_total(&self) -> u64 {
        self.ok.iter().sum()
    }

    pub fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Totals for a scenario without a warm-up: everything sent was measured.
    pub fn counts(&self) -> crate::results::OpCounts {
        crate::results::OpCounts {
            sent: self.ok_total() + self.error_total(),
            ok: self.ok_total(),
            errors: self.error_total(),
            warmup: 0,
        }
    }

    /// Move to `second` (since the scenario started), handing the previous one to the timeline.
    /// Only forward: a recorder shared by several connections may see a slightly older second
    /// from one of them, which then counts in the current one.
    pub fn tick(&mut self, timeline: &Mutex<Timeline>, second: u64) {
        if second > self.second {
            self.flush(timeline);
            self.second = second;
        }
    }

    /// Hand the current second to the timeline.
    pub fn flush(&mut self, timeline: &Mutex<Timeline>) {
        if self.second_ok + self.second_errors > 0 {
            let mut t = timeline.lock().expect("timeline lock");
            t.add(
                self.second,
                self.second_ok,
                self.second_errors,
                &self.second_hist,
            );
            drop(t);
            self.second_ok = 0;
            self.second_errors = 0;
            self.second_hist.reset();
        }
    }

    pub fn merge(&mut self, other: &Recorder) {
        for i in 0..self.names.len() {
            let _ = self.hist[i].add(&other.hist[i]);
            let _ = self.failed_hist[i].add(&other.failed_hist[i]);
            self.ok[i] += other.ok[i];
            self.errors[i] += other.errors[i];
            if let Some(o) = &other.lookups[i] {
                let l = self.lookups[i].get_or_insert_with(Lookups::new);
                l.hits += o.hits;
                l.misses += o.misses;
                let _ = l.hit_hist.add(&o.hit_hist);
                let _ = l.miss_hist.add(&o.miss_hist);
            }
        }
        for (k, (n, msg)) in &other.error_kinds {
            self.error_kinds
                .entry(k.clone())
                .or_insert_with(|| (0, msg.clone()))
                .0 += n;
        }
    }

    /// Per-operation statistics (operations never attempted are left out), then "all", then the
    /// lookups' "<op>:hit" and "<op>:miss" rows, and the error kinds, most frequent first. Throughput is per second of `window_secs`.
    pub fn summarize(&self, window_secs: f64) -> (Vec<OpStats>, Vec<ErrorCount>) {
        let rate = |n: u64| {
            if window_secs > 0.0 {
                n as f64 / window_secs
            } else {
                0.0
            }
        };
        let mut total = new_histogram();
        let mut failed_total = new_histogram();
        let mut ops = Vec::new();
        let mut lookup_rows = Vec::new();
        let (mut hits, mut misses) = (None::<u64>, None::<u64>);
        for (i, name) in self.names.iter().enumerate() {
            if self.ok[i] + self.errors[i] == 0 {
                continue;
            }
            let _ = total.add(&self.hist[i]);
            let _ = failed_total.add(&self.failed_hist[i]);
            let mut stats = op_stats(
                name,
                self.ok[i],
                self.errors[i],
                rate(self.ok[i]),
                &self.hist[i],
                &self.failed_hist[i],
            );
            if let Some(l) = &self.lookups[i] {
                stats.hits = Some(l.hits);
                stats.misses = Some(l.misses);
                *hits.get_or_insert(0) += l.hits;
                *misses.get_or_insert(0) += l.misses;
                let none_failed = new_histogram();
                for (what, n, hist) in [
                    ("hit", l.hits, &l.hit_hist),
                    ("miss", l.misses, &l.miss_hist),
                ] {
                    if n > 0 {
                        let name = format!("{name}:{what}");
                        lookup_rows.push(op_stats(&name, n, 0, rate(n), hist, &none_failed));
                    }
                }
            }
            ops.push(stats);
        }
        ops.push(OpStats {
            hits,
            misses,
            ..op_stats(
                "all",
                self.ok_total(),
                self.error_total(),
                rate(self.ok_total()),
                &total,
                &failed_total,
            )
        });
        // After "all", which they are part of already.
        ops.extend(lookup_rows);
        // By name: two failures that print alike are one row.
        let mut by_name: HashMap<String, (u64, &String)> = HashMap::new();
        for (kind, (count, example)) in &self.error_kinds {
            by_name.entry(kind.to_string()).or_insert((0, example)).0 += count;
        }
        let mut errors: Vec<ErrorCount> = by_name
            .into_iter()
            .map(|(kind, (count, example))| ErrorCount {
                kind,
                count,
                example: example.clone(),
            })
            .collect();
        errors.sort_by(|a, b| b.count.cmp(&a.count).then(a.kind.cmp(&b.kind)));
        (ops, errors)
    }
}

/// One operation's statistics; the failed-latency summaries only when failures were timed.
fn op_stats(
    name: &str,
    ok: u64,
    errors: u64,
    throughput: f64,
    hist: &Histogram<u64>,
    failed: &Histogram<u64>,
) -> OpStats {
    let with_failures = (!failed.is_empty()).then(|| {
        let mut all = hist.clone();
        let _ = all.add(failed);
        LatencySummary::of(&all)
    });
    OpStats {
        op: name.to_string(),
        ok,
        errors,
        throughput,
        latency: LatencySummary::of(hist),
        histogram: encode(hist),
        failed_latency: (!failed.is_empty()).then(|| LatencySummary::of(failed)),
        latency_with_failures: with_failures,
        hits: None,
        misses: None,
    }
}

/// Per-second aggregation. Recorders hand in a second when they move past it; seconds no
/// recorder can still add to are summarized and dropped, so memory stays flat on long runs.
pub struct Timeline {
    warmup_secs: f64,
    open: BTreeMap<u64, SecondAgg>,
    done: Vec<TimelinePoint>,
}

struct SecondAgg {
    ok: u64,
    errors: u64,
    hist: Histogram<u64>,
}

impl Timeline {
    pub fn new(warmup_secs: f64) -> Self {
        Timeline {
            warmup_secs,
            open: BTreeMap::new(),
            done: Vec::new(),
        }
    }

    fn add(&mut self, second: u64, ok: u64, errors: u64, hist: &Histogram<u64>) {
        // A second already summarized (a recorder lagged more than the grace period) keeps one
        // point: its counts grow, its percentiles stay those of what arrived in time.
        if self.done.last().is_some_and(|p| second <= p.second) {
            match self.done.binary_search_by_key(&second, |p| p.second) {
                Ok(i) => {
                    self.done[i].ok += ok;
                    self.done[i].errors += errors;
                }
                Err(i) => {
                    let agg = SecondAgg {
                        ok,
                        errors,
                        hist: hist.clone(),
                    };
                    let point = self.point(second, agg);
                    self.done.insert(i, point);
                }
            }
            return;
        }
        let agg = self.open.entry(second).or_insert_with(|| SecondAgg {
            ok: 0,
            errors: 0,
            hist: new_histogram(),
        });
        agg.ok += ok;
        agg.errors += errors;
        let _ = agg.hist.add(hist);
        // A recorder blocked on a timeout can lag a few seconds behind the newest one.
        let newest = *self.open.keys().next_back().expect("just inserted");
        while let Some((&s, _)) = self.open.first_key_value() {
            if s + 5 > newest {
                break;
            }
            let agg = self.open.remove(&s).expect("key exists");
            self.done.push(self.point(s, agg));
        }
    }

    pub fn finish(mut self) -> Vec<TimelinePoint> {
        let rest = std::mem::take(&mut self.open);
        for (s, agg) in rest {
            let p = self.point(s, agg);
            self.done.push(p);
        }
        self.done
    }

    fn point(&self, second: u64, agg: SecondAgg) -> TimelinePoint {
        let s = LatencySummary::of(&agg.hist);
        TimelinePoint {
            second,
            warmup: ((second + 1) as f64) <= self.warmup_secs,
            ok: agg.ok,
            errors: agg.errors,
            p50_us: s.p50_us,
            p99_us: s.p99_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist_of(ns: u64) -> Histogram<u64> {
        let mut h = new_histogram();
        record_ns(&mut h, ns);
        h
    }

    #[test]
    fn a_late_second_joins_its_point_instead_of_adding_another() {
        let mut t = Timeline::new(0.0);
        for s in 0..10 {
            t.add(s, 10, 0, &hist_of(1_000));
        }
        // Second 2 was summarized long ago; a lagging recorder hands in more of it.
        t.add(2, 5, 1, &hist_of(1_000));
        let points = t.finish();
        let seconds: Vec<u64> = points.iter().map(|p| p.second).collect();
        assert_eq!(seconds, (0..10).collect::<Vec<_>>());
        assert_eq!((points[2].ok, points[2].errors), (15, 1));
    }

    #[test]
    fn a_shared_recorder_only_moves_forward() {
        let timeline = Mutex::new(Timeline::new(0.0));
        let mut r = Recorder::new(&["get"]);
        r.tick(&timeline, 3);
        r.ok(0, 1_000);
        r.tick(&timeline, 2);
        r.ok(0, 1_000);
        r.tick(&timeline, 4);
        r.flush(&timeline);
        let points = timeline.into_inner().unwrap().finish();
        assert_eq!(points.len(), 1);
        assert_eq!((points[0].second, points[0].ok), (3, 2));
    }
}
