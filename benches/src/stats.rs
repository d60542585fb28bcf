//! Latency histograms, their percentile summary, and medians across rounds.

use hdrhistogram::Histogram;

/// A histogram of nanoseconds from 1 ns to 60 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// The percentiles the report shows, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Percentiles {
    /// Number of recorded samples.
    pub samples: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// 99.99th percentile.
    pub p9999: f64,
    /// Largest sample.
    pub max: f64,
}

impl Percentiles {
    /// Reads the percentiles off a histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        let q = |p: f64| h.value_at_quantile(p) as f64;
        Self {
            samples: h.len(),
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            max: h.max() as f64,
        }
    }

    /// `samples=.. p50=.. ...` for the control channel.
    pub fn encode(&self) -> String {
        format!(
            "samples={} p50={} p90={} p99={} p999={} p9999={} max={}",
            self.samples, self.p50, self.p90, self.p99, self.p999, self.p9999, self.max
        )
    }

    /// The inverse of [`Percentiles::encode`], from parsed `key=value` fields.
    pub fn decode(f: &std::collections::HashMap<String, String>) -> anyhow::Result<Self> {
        let get = |k: &str| -> anyhow::Result<f64> {
            f.get(k)
                .ok_or_else(|| anyhow::anyhow!("peer reply lacks {k}"))?
                .parse::<f64>()
                .map_err(|e| anyhow::anyhow!("peer reply {k}: {e}"))
        };
        Ok(Self {
            samples: get("samples")? as u64,
            p50: get("p50")?,
            p90: get("p90")?,
            p99: get("p99")?,
            p999: get("p999")?,
            p9999: get("p9999")?,
            max: get("max")?,
        })
    }

    /// Field-wise median across rounds; `samples` is the total.
    pub fn median_of(rounds: &[Percentiles]) -> Self {
        let m = |f: fn(&Percentiles) -> f64| median(rounds.iter().map(f));
        Self {
            samples: rounds.iter().map(|r| r.samples).sum(),
            p50: m(|r| r.p50),
            p90: m(|r| r.p90),
            p99: m(|r| r.p99),
            p999: m(|r| r.p999),
            p9999: m(|r| r.p9999),
            max: m(|r| r.max),
        }
    }
}

/// The median of some numbers (mean of the middle two for an even count; NaN for none).
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Spread across rounds as (min, max).
pub fn spread(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram_and_survive_the_control_channel() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 100).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.samples, 10_000);
        assert!((p.p50 - 500_000.0).abs() / 500_000.0 < 0.002, "{p:?}");
        assert!(
            p.p50 <= p.p90
                && p.p90 <= p.p99
                && p.p99 <= p.p999
                && p.p999 <= p.p9999
                && p.p9999 <= p.max
        );
        let fields = p
            .encode()
            .split(' ')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        assert_eq!(Percentiles::decode(&fields).unwrap(), p);
    }

    #[test]
    fn median_and_spread_across_rounds() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
        assert_eq!(spread([3.0, 1.0, 2.0].into_iter()), (1.0, 3.0));
    }
}
