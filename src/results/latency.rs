//! Latency histograms: recorded in nanoseconds into HDR histograms (3 significant digits), so
//! every percentile is exact to 0.1% and never a bucket-rounded average. Serialized in the
//! standard HdrHistogram V2+deflate format (base64), readable by other HDR tools.

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency we track: one minute. Larger values are clamped (and still counted).
const MAX_NS: u64 = 60_000_000_000;

/// An auto-resizing histogram: its memory follows the largest latency recorded (tens of KB for
/// sub-millisecond latencies) instead of being sized for one minute up front.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits is valid")
}

/// Record a latency, clamping to the tracked range. (`saturating_record` would not grow an
/// auto-resizing histogram, so values are clamped here and recorded normally.)
#[inline]
pub fn record_ns(h: &mut Histogram<u64>, ns: u64) {
    h.record(ns.clamp(1, MAX_NS))
        .expect("an auto-resizing histogram accepts values up to MAX_NS");
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            min_us: us(h.min()),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serializing into a Vec cannot fail");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histogram does not decode: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_ordered_and_round_trips() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            record_ns(&mut h, v * 1000);
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 10_000);
        assert!(s.min_us <= s.p50_us && s.p50_us <= s.p90_us && s.p90_us <= s.p99_us);
        assert!(s.p99_us <= s.p999_us && s.p999_us <= s.max_us);
        // 3 significant digits: within 0.1%, plus rounding up to the bucket edge.
        assert!((s.p50_us - 5000.0).abs() / 5000.0 < 0.002, "{}", s.p50_us);
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(LatencySummary::of(&back), s);
    }
}
