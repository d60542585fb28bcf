//! The performance targets, checked against a run. Ratios are formed within each round
//! (both sides measured seconds apart) and the median across rounds is compared with the
//! target: the VM's vCPUs move between rounds, so a ratio of two cross-round medians could
//! pair a fast round with a slow one.

use crate::measure::PairResult;
use crate::report::{Record, Report};
use crate::stats::median;
use crate::transport::Class;
use serde_json::{json, Value};

/// One target and what the run says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// What is compared, in words.
    pub what: String,
    /// The measured ratio (median of per-round ratios), if both sides were measured.
    pub ratio: Option<f64>,
    /// The target ratio.
    pub limit: f64,
    /// Whether the ratio must be at least `limit` (else at most).
    pub at_least: bool,
}

impl Target {
    /// Met, not met, or not measured.
    pub fn verdict(&self) -> &'static str {
        match self.ratio {
            None => "not measured",
            Some(r)
                if (self.at_least && r >= self.limit) || (!self.at_least && r <= self.limit) =>
            {
                "met"
            }
            Some(_) => "NOT met",
        }
    }
}

type Metric = fn(&PairResult) -> Option<f64>;

/// The round-trip p50, block-timed where measured (one clock read per block, not per round
/// trip: see the README's method).
fn rtt_p50(r: &PairResult) -> Option<f64> {
    r.rtt_block.or(r.rtt).map(|p| p.p50)
}
fn rtt_p999(r: &PairResult) -> Option<f64> {
    r.rtt.map(|p| p.p999)
}
fn msgs(r: &PairResult) -> Option<f64> {
    r.stream.map(|s| s.msgs_per_s)
}
fn mbps(r: &PairResult) -> Option<f64> {
    r.stream.map(|s| s.mb_per_s)
}

fn in_round(recs: &[Record], round: usize, size: usize) -> impl Iterator<Item = &Record> {
    recs.iter()
        .filter(move |r| r.round == round && r.size == size)
}

/// Median over rounds of `metric(a) / metric(b)`, where `b` is a transport name or, for
/// `None`, the best kernel transport of that round (lowest if `lower_is_better`).
fn paired(
    recs: &[Record],
    a: &str,
    b: Option<&str>,
    size: usize,
    metric: Metric,
    lower_is_better: bool,
) -> Option<f64> {
    let rounds: Vec<usize> = {
        let mut v: Vec<usize> = recs.iter().map(|r| r.round).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    // (ratio, whether both sides were measured without competing load)
    let ratios: Vec<(f64, bool)> = rounds
        .into_iter()
        .filter_map(|round| {
            let value = |r: &Record| metric(&r.result).map(|v| (v, r.is_clean()));
            let (x, x_clean) = in_round(recs, round, size)
                .find(|r| r.transport == a)
                .and_then(value)?;
            let (y, y_clean) = match b {
                Some(b) => in_round(recs, round, size)
                    .find(|r| r.transport == b)
                    .and_then(value)?,
                None => {
                    let kernel = in_round(recs, round, size)
                        .filter(|r| r.class == Class::Kernel)
                        .filter_map(value);
                    if lower_is_better {
                        kernel.min_by(|p, q| p.0.total_cmp(&q.0))?
                    } else {
                        kernel.max_by(|p, q| p.0.total_cmp(&q.0))?
                    }
                }
            };
            Some((x / y, x_clean && y_clean))
        })
        .collect();
    // Rounds where either side competed with other load are left out when clean ones exist.
    let clean: Vec<f64> = ratios.iter().filter(|r| r.1).map(|r| r.0).collect();
    let used = if clean.is_empty() {
        ratios.iter().map(|r| r.0).collect()
    } else {
        clean
    };
    (!used.is_empty()).then(|| median(used.into_iter()))
}

/// The targets for `shmbus-spsc`, `shmbus-channel` and (feature `iceoryx2`) against
/// `iceoryx2`.
pub fn evaluate(report: &Report) -> Vec<Target> {
    let recs = &report.records;
    let spsc = "shmbus-spsc";
    let inv = |r: Option<f64>| r.map(|x| 1.0 / x);
    let mut v = vec![
        Target {
            what: format!("{spsc} round trip p50 at 8 B / floor-cacheline p50"),
            ratio: paired(recs, spsc, Some("floor-cacheline"), 8, rtt_p50, true),
            limit: 1.3,
            at_least: false,
        },
        Target {
            what: format!("{spsc} round trip p99.9 at 8 B / floor-cacheline p99.9"),
            ratio: paired(recs, spsc, Some("floor-cacheline"), 8, rtt_p999, true),
            limit: 3.0,
            at_least: false,
        },
    ];
    for size in [8, 1024] {
        v.push(Target {
            what: format!("best kernel round trip p50 at {size} B / {spsc} p50"),
            ratio: inv(paired(recs, spsc, None, size, rtt_p50, true)),
            limit: 100.0,
            at_least: true,
        });
    }
    v.push(Target {
        what: format!("{spsc} msgs/s at 64 B / best kernel msgs/s"),
        ratio: paired(recs, spsc, None, 64, msgs, false),
        limit: 20.0,
        at_least: true,
    });
    v.push(Target {
        what: format!("{spsc} MB/s at 64 KiB / best kernel MB/s"),
        ratio: paired(recs, spsc, None, 65536, mbps, false),
        limit: 2.0,
        at_least: true,
    });
    // The typed layer: bincode struct of (about) the same encoded size, both spinning.
    for size in [8, 1024] {
        v.push(Target {
            what: format!("shmbus-channel round trip p50 at {size} B / {spsc} p50"),
            ratio: paired(recs, "shmbus-channel", Some(spsc), size, rtt_p50, true),
            limit: 1.3,
            at_least: false,
        });
    }
    if cfg!(feature = "iceoryx2") {
        let ice = Some("iceoryx2");
        for (what, metric, lower) in [
            ("round trip p50", rtt_p50 as Metric, true),
            ("round trip p99.9", rtt_p999, true),
        ] {
            v.push(Target {
                what: format!("{spsc} {what} at 8 B / iceoryx2 {what}"),
                ratio: paired(recs, spsc, ice, 8, metric, lower),
                limit: 1.0,
                at_least: false,
            });
        }
        v.push(Target {
            what: format!("{spsc} msgs/s at 64 B / iceoryx2 msgs/s"),
            ratio: paired(recs, spsc, ice, 64, msgs, false),
            limit: 1.0,
            at_least: true,
        });
    }
    // Not an issue target: the floor of any pair of one-way channels (a line each way), which
    // `floor-cacheline` (one line both ways) is not.
    v.push(Target {
        what: format!("{spsc} round trip p50 at 8 B / floor-two-lines p50"),
        ratio: paired(recs, spsc, Some("floor-two-lines"), 8, rtt_p50, true),
        limit: 1.0,
        at_least: false,
    });
    v
}

/// What the hardware allows for the "100x the best kernel transport" target: the best kernel
/// round trip at 8 B over `floor-cacheline`'s, paired within rounds. No ring can beat it.
pub fn ceiling(report: &Report) -> Option<f64> {
    paired(&report.records, "floor-cacheline", None, 8, rtt_p50, true).map(|x| 1.0 / x)
}

/// The targets as a table section (empty when none was measured).
pub fn table(targets: &[Target], ceiling: Option<f64>) -> String {
    if targets.iter().all(|t| t.ratio.is_none()) {
        return String::new();
    }
    let mut tb = crate::table::table(&["what", "", "ratio", "target", "verdict"]);
    for t in targets {
        let ratio = t.ratio.map_or("-".to_string(), |r| format!("{r:.2}x"));
        let rule = format!("{} {}x", if t.at_least { ">=" } else { "<=" }, t.limit);
        tb.add_row(vec![
            t.what.clone(),
            String::new(),
            ratio,
            rule,
            t.verdict().to_string(),
        ]);
    }
    if let Some(c) = ceiling {
        tb.add_row(vec![
            "best kernel round trip p50 at 8 B / floor-cacheline p50".to_string(),
            String::new(),
            format!("{c:.2}x"),
            String::new(),
            "(the most any ring can reach here)".to_string(),
        ]);
    }
    crate::table::text_last(&mut tb);
    format!("\nTARGETS (ratios paired within each round, median across rounds)\n{tb}\n")
}

/// The targets as JSON (an extra top-level key of the report).
pub fn json(targets: &[Target]) -> Value {
    targets
        .iter()
        .map(|t| {
            json!({"what": t.what, "ratio": t.ratio, "limit": t.limit,
                   "at_least": t.at_least, "verdict": t.verdict()})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Machine;
    use crate::stats::Percentiles;

    fn rec(transport: &str, class: Class, round: usize, p50: f64) -> Record {
        Record {
            transport: transport.into(),
            class,
            size: 8,
            round,
            ring_bytes: None,
            other_load: Some(0.0),
            result: PairResult {
                rtt: Some(Percentiles {
                    samples: 1,
                    p50,
                    p999: p50 * 2.0,
                    ..Percentiles::default()
                }),
                ..PairResult::default()
            },
        }
    }

    #[test]
    fn ratios_pair_figures_of_the_same_round() {
        // Round 1 is a fast round, round 2 a slow one (the vCPUs moved): the ratio is 1.2 in
        // both, though the cross-round medians alone would not say so.
        let records = vec![
            rec("floor-cacheline", Class::Floor, 1, 100.0),
            rec("shmbus-spsc", Class::SharedMemory, 1, 120.0),
            rec("pipe", Class::Kernel, 1, 15_000.0),
            rec("floor-cacheline", Class::Floor, 2, 400.0),
            rec("shmbus-spsc", Class::SharedMemory, 2, 480.0),
            rec("pipe", Class::Kernel, 2, 60_000.0),
        ];
        let m = Machine {
            cpu: "t".into(),
            cores: 2,
            kernel: "k".into(),
            placement: "p".into(),
        };
        let report = Report::build(m, &records, vec![], 2, 10_000, false);
        let t = evaluate(&report);
        assert!((t[0].ratio.unwrap() - 1.2).abs() < 1e-9);
        assert_eq!(t[0].verdict(), "met");
        assert!((t[2].ratio.unwrap() - 125.0).abs() < 1e-9);
        assert_eq!(t[3].verdict(), "not measured");
        let c = ceiling(&report).unwrap();
        assert!((c - 150.0).abs() < 1e-9, "{c}");
        let text = table(&t, Some(c));
        assert!(
            text.contains("125.00x") && text.contains("150.00x"),
            "{text}"
        );
    }
}
