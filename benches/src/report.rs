//! Results across rounds: medians with spread, JSON and CSV (the terminal tables are in
//! [`crate::table`]).

use crate::measure::{PairResult, Throughput};
use crate::stats::{median, spread, Percentiles};
use crate::transport::Class;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// The machine the run happened on.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Cores this process may run on.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// Where the two processes ran.
    pub placement: String,
}

/// One round's result for one transport at one size.
#[derive(Debug, Clone)]
pub struct Record {
    /// Transport name.
    pub transport: String,
    /// Floor, kernel or shared memory.
    pub class: Class,
    /// Message size, bytes.
    pub size: usize,
    /// Which round (from 1): ratios pair figures of the same round.
    pub round: usize,
    /// The data bytes of the transport's ring (ring transports only: see [`crate::ring`]).
    pub ring_bytes: Option<u64>,
    /// CPU that other processes and the hypervisor took while this was measured, as a
    /// fraction of one core (`None`: unknown).
    pub other_load: Option<f64>,
    /// What was measured.
    pub result: PairResult,
}

/// Other load (fraction of a core) above which a round's figures are set aside when the
/// same transport and size has cleaner rounds: /proc/stat counts in 10 ms ticks, so a
/// 300 ms phase shows 3 % of noise on its own.
pub const CONTAMINATED: f64 = 0.10;

impl Record {
    /// Whether nothing else competed noticeably for the CPU during this measurement.
    pub fn is_clean(&self) -> bool {
        self.other_load.is_none_or(|l| l < CONTAMINATED)
    }
}

/// A median across rounds and the (min, max) of its headline figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agg<T> {
    /// Field-wise median across rounds.
    pub median: T,
    /// Lowest and highest headline figure across rounds (p50 or msgs/s).
    pub spread: (f64, f64),
}

/// All rounds of one transport at one size, folded.
#[derive(Debug, Clone)]
pub struct Row {
    /// Transport name.
    pub transport: String,
    /// Floor, kernel or shared memory.
    pub class: Class,
    /// Message size, bytes.
    pub size: usize,
    /// The data bytes of the transport's ring, for ring transports.
    pub ring_bytes: Option<u64>,
    /// Rounds that contributed.
    pub rounds: usize,
    /// Rounds measured under competing load and left out because cleaner ones exist.
    pub set_aside: usize,
    /// Every round of this row ran under competing load (so none could be left out).
    pub contaminated: bool,
    /// Round trip.
    pub rtt: Option<Agg<Percentiles>>,
    /// One-way at the offered rate.
    pub oneway: Option<Agg<Percentiles>>,
    /// Streaming.
    pub stream: Option<Agg<Throughput>>,
    /// Idle receiver CPU share (0..1).
    pub idle_cpu: Option<f64>,
    /// Round trip timed in blocks (see [`PairResult::rtt_block`]).
    pub rtt_block: Option<Agg<Percentiles>>,
    /// The bracketing floor's p50 (blocks), ns: median over rounds of the mean of before and
    /// after.
    pub floor_ns: Option<f64>,
    /// Round-trip p50 (blocks) over the bracketing floor's, paired within each round; median.
    pub vs_floor: Option<f64>,
    /// Batched streaming.
    pub stream_batch: Option<Agg<Throughput>>,
}

impl Row {
    /// The transport's name, marked `*` when every round ran under competing load.
    pub fn label(&self) -> String {
        if self.contaminated {
            format!("{}*", self.transport)
        } else {
            self.transport.clone()
        }
    }

    /// The ring size for a table cell (`-` for transports without a ring).
    pub fn ring_label(&self) -> String {
        self.ring_bytes
            .map_or_else(|| "-".into(), crate::ring::label)
    }
}

fn agg_stream(v: &[Throughput]) -> Option<Agg<Throughput>> {
    (!v.is_empty()).then(|| Agg {
        median: Throughput {
            msgs_per_s: median(v.iter().map(|s| s.msgs_per_s)),
            mb_per_s: median(v.iter().map(|s| s.mb_per_s)),
            cpu_ns_per_msg: median(v.iter().map(|s| s.cpu_ns_per_msg)),
        },
        spread: spread(v.iter().map(|s| s.msgs_per_s)),
    })
}

/// A whole run, ready to print or write.
#[derive(Debug, Clone)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// One row per transport and size, by size then run order.
    pub rows: Vec<Row>,
    /// Setup remarks (limits raised or not, transports skipped).
    pub notes: Vec<String>,
    /// Rounds asked for.
    pub rounds: usize,
    /// Offered rate of the one-way phase, msgs/s.
    pub rate: u64,
    /// A `--quick` run (short phases: the tails are thin).
    pub quick: bool,
    /// Every round's records, for ratios paired within a round.
    pub records: Vec<Record>,
    /// The calibrated cost of one clock read, ns (see [`crate::clock::read_overhead_ns`]).
    pub clock_read_ns: Option<f64>,
    /// Round trips per timed block.
    pub rtt_block: usize,
}

fn agg_pct(v: &[Percentiles]) -> Option<Agg<Percentiles>> {
    (!v.is_empty()).then(|| Agg {
        median: Percentiles::median_of(v),
        spread: spread(v.iter().map(|p| p.p50)),
    })
}

impl Report {
    /// Folds the records of all rounds into rows (records of one transport and size, in any
    /// order, become one row).
    pub fn build(
        machine: Machine,
        records: &[Record],
        notes: Vec<String>,
        rounds: usize,
        rate: u64,
        quick: bool,
    ) -> Self {
        let mut keys: Vec<(usize, String, Class, Option<u64>)> = Vec::new();
        for r in records {
            if !keys
                .iter()
                .any(|(s, t, _, b)| *s == r.size && *t == r.transport && *b == r.ring_bytes)
            {
                keys.push((r.size, r.transport.clone(), r.class, r.ring_bytes));
            }
        }
        keys.sort_by_key(|k| k.0); // stable: keeps run order within a size
        let rows = keys
            .into_iter()
            .map(|(size, transport, class, ring_bytes)| {
                let all: Vec<&Record> = records
                    .iter()
                    .filter(|r| {
                        r.size == size && r.transport == transport && r.ring_bytes == ring_bytes
                    })
                    .collect();
                let clean: Vec<&Record> = all.iter().copied().filter(|r| r.is_clean()).collect();
                let used = if clean.is_empty() { &all } else { &clean };
                let mine: Vec<&PairResult> = used.iter().map(|r| &r.result).collect();
                let rtt: Vec<Percentiles> = mine.iter().filter_map(|r| r.rtt).collect();
                let oneway: Vec<Percentiles> = mine.iter().filter_map(|r| r.oneway).collect();
                let stream: Vec<Throughput> = mine.iter().filter_map(|r| r.stream).collect();
                let idle: Vec<f64> = mine.iter().filter_map(|r| r.idle_cpu).collect();
                let block: Vec<Percentiles> = mine.iter().filter_map(|r| r.rtt_block).collect();
                let batch: Vec<Throughput> = mine.iter().filter_map(|r| r.stream_batch).collect();
                let floors: Vec<f64> = mine
                    .iter()
                    .filter_map(|r| r.bracket.map(|(a, b)| (a + b) / 2.0))
                    .collect();
                let vs: Vec<f64> = mine
                    .iter()
                    .filter_map(|r| Some(r.rtt_block?.p50 / r.bracket.map(|(a, b)| (a + b) / 2.0)?))
                    .filter(|x| x.is_finite())
                    .collect();
                Row {
                    ring_bytes,
                    rtt_block: agg_pct(&block),
                    floor_ns: (!floors.is_empty()).then(|| median(floors.into_iter())),
                    vs_floor: (!vs.is_empty()).then(|| median(vs.into_iter())),
                    stream_batch: agg_stream(&batch),
                    rounds: mine.len(),
                    set_aside: all.len() - mine.len(),
                    contaminated: clean.is_empty(),
                    rtt: agg_pct(&rtt),
                    oneway: agg_pct(&oneway),
                    stream: agg_stream(&stream),
                    idle_cpu: (!idle.is_empty()).then(|| median(idle.into_iter())),
                    transport,
                    class,
                    size,
                }
            })
            .collect();
        Report {
            machine,
            rows,
            notes,
            rounds,
            rate,
            quick,
            records: records.to_vec(),
            clock_read_ns: None,
            rtt_block: crate::cli::DEFAULT_RTT_BLOCK,
        }
    }

    /// Adds the calibrated clock-read cost and the round trips per timed block.
    pub fn with_timing(mut self, clock_read_ns: f64, rtt_block: usize) -> Self {
        self.clock_read_ns = Some(clock_read_ns);
        self.rtt_block = rtt_block;
        self
    }

    /// The best kernel transport's round-trip p50 at `size` (lowest; block-timed where
    /// measured), with its name.
    pub fn best_kernel_rtt(&self, size: usize) -> Option<(&str, f64)> {
        self.best_kernel_rtt_of(size, None)
    }

    /// As [`Report::best_kernel_rtt`] among the busy-polling kernel rows (`Some(true)`: names
    /// ending in `-spin`) or the blocking ones (`Some(false)`), or all (`None`).
    pub fn best_kernel_rtt_of(&self, size: usize, spinning: Option<bool>) -> Option<(&str, f64)> {
        self.rows
            .iter()
            .filter(|r| r.size == size && r.class == Class::Kernel)
            .filter(|r| spinning.is_none_or(|s| r.transport.ends_with("-spin") == s))
            .filter_map(|r| {
                r.rtt_block
                    .or(r.rtt)
                    .map(|a| (r.transport.as_str(), a.median.p50))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// The row of `transport` at `size`: with `ring`, the one whose ring size is nearest to
    /// it (an MPMC ring's slots make its bytes differ from the size asked: 68 KiB for 64 KiB
    /// of 1 KiB messages); without, the first (the run's first ring size).
    pub fn row(&self, transport: &str, size: usize, ring: Option<u64>) -> Option<&Row> {
        let rows = self
            .rows
            .iter()
            .filter(|r| r.transport == transport && r.size == size);
        match ring {
            None => rows.into_iter().next(),
            Some(want) => rows.min_by_key(|r| {
                r.ring_bytes.map_or(0, |b| {
                    (b.max(want) as f64 / b.min(want).max(1) as f64 * 1e3) as u64
                })
            }),
        }
    }

    /// The best kernel transport's streaming rate at `size` (highest), with its name.
    pub fn best_kernel_stream(&self, size: usize) -> Option<(&str, f64)> {
        self.rows
            .iter()
            .filter(|r| r.size == size && r.class == Class::Kernel)
            .filter_map(|r| {
                r.stream
                    .map(|a| (r.transport.as_str(), a.median.msgs_per_s))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// `lo..hi`, followed by how many rounds backed the row when some were left out.
    pub fn spread_text(&self, r: &Row, lo: String, hi: String) -> String {
        if r.rounds < self.rounds {
            format!("{lo}..{hi} ({}/{})", r.rounds, self.rounds)
        } else {
            format!("{lo}..{hi}")
        }
    }

    /// The JSON document of the issue's schema: `machine`, and `results` entries of kind `rtt`
    /// and `throughput` with exactly the issue's fields. Extra information goes into extra
    /// kinds (`oneway`, `idle`) and extra top-level keys (`rounds`, `rate_per_s`, `notes`,
    /// `spread`), which a reader of the issue's schema can ignore.
    pub fn json(&self) -> Value {
        let m = &self.machine;
        let mut results = Vec::new();
        let mut spreads = Vec::new();
        let pct = |p: &Percentiles| {
            json!({"samples": p.samples, "p50_ns": p.p50, "p90_ns": p.p90, "p99_ns": p.p99,
                   "p999_ns": p.p999, "p9999_ns": p.p9999, "max_ns": p.max})
        };
        for r in &self.rows {
            let head = |kind: &str| match r.ring_bytes {
                Some(b) => {
                    json!({"transport": r.transport, "size": r.size, "kind": kind, "ring_bytes": b})
                }
                None => json!({"transport": r.transport, "size": r.size, "kind": kind}),
            };
            if let Some(a) = r.rtt_block {
                results.push(merge(
                    merge(head("rtt_block"), pct(&a.median)),
                    json!({"round_trips_per_block": self.rtt_block,
                           "bracket_floor_p50_ns": r.floor_ns, "vs_bracket_floor": r.vs_floor}),
                ));
            }
            if let Some(a) = r.stream_batch {
                let s = a.median;
                results.push(merge(
                    head("throughput_batch"),
                    json!({"msgs_per_s": s.msgs_per_s, "mb_per_s": s.mb_per_s,
                           "cpu_ns_per_msg": s.cpu_ns_per_msg, "batch": crate::driver::BATCH}),
                ));
            }
            if let Some(a) = r.rtt {
                results.push(merge(head("rtt"), pct(&a.median)));
                spreads.push(
                    json!({"transport": r.transport, "size": r.size, "kind": "rtt",
                    "metric": "p50_ns", "min": a.spread.0, "max": a.spread.1, "rounds": r.rounds, "rounds_set_aside": r.set_aside, "contaminated": r.contaminated}),
                );
            }
            if let Some(a) = r.stream {
                let s = a.median;
                results.push(merge(
                    head("throughput"),
                    json!({"msgs_per_s": s.msgs_per_s, "mb_per_s": s.mb_per_s, "cpu_ns_per_msg": s.cpu_ns_per_msg}),
                ));
                spreads.push(json!({"transport": r.transport, "size": r.size, "kind": "throughput",
                    "metric": "msgs_per_s", "min": a.spread.0, "max": a.spread.1, "rounds": r.rounds, "rounds_set_aside": r.set_aside, "contaminated": r.contaminated}));
            }
            if let Some(a) = r.oneway {
                results.push(merge(
                    merge(head("oneway"), pct(&a.median)),
                    json!({"rate_per_s": self.rate}),
                ));
            }
            if let Some(idle) = r.idle_cpu {
                results.push(merge(head("idle"), json!({"idle_cpu_pct": idle * 100.0})));
            }
        }
        json!({
            "machine": {"cpu": m.cpu, "cores": m.cores, "kernel": m.kernel, "placement": m.placement},
            "results": results,
            "rounds": self.rounds,
            "rate_per_s": self.rate,
            "quick": self.quick,
            "notes": self.notes,
            "spread": spreads,
            "clock_read_ns": self.clock_read_ns,
            "round_trips_per_block": self.rtt_block,
            "raw": self.records.iter().map(raw).collect::<Vec<_>>(),
        })
    }

    /// One CSV line per transport, size and kind.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "transport,class,size,kind,samples,p50_ns,p90_ns,p99_ns,p999_ns,p9999_ns,max_ns,msgs_per_s,mb_per_s,cpu_ns_per_msg,idle_cpu_pct,spread_min,spread_max,ring_bytes\n",
        );
        let class = |c: Class| match c {
            Class::Floor => "floor",
            Class::Kernel => "kernel",
            Class::SharedMemory => "shm",
        };
        for r in &self.rows {
            let c = class(r.class);
            let mut o = String::new();
            for (kind, a) in [
                ("rtt", r.rtt),
                ("rtt_block", r.rtt_block),
                ("oneway", r.oneway),
            ] {
                if let Some(a) = a {
                    let p = a.median;
                    let _ = writeln!(
                        o,
                        "{},{c},{},{kind},{},{},{},{},{},{},{},,,,,{},{}",
                        r.transport,
                        r.size,
                        p.samples,
                        p.p50,
                        p.p90,
                        p.p99,
                        p.p999,
                        p.p9999,
                        p.max,
                        a.spread.0,
                        a.spread.1
                    );
                }
            }
            for (kind, a) in [
                ("throughput", r.stream),
                ("throughput_batch", r.stream_batch),
            ] {
                let Some(a) = a else { continue };
                let s = a.median;
                let _ = writeln!(
                    o,
                    "{},{c},{},{kind},,,,,,,,{:.1},{:.3},{:.2},,{:.1},{:.1}",
                    r.transport,
                    r.size,
                    s.msgs_per_s,
                    s.mb_per_s,
                    s.cpu_ns_per_msg,
                    a.spread.0,
                    a.spread.1
                );
            }
            if let Some(i) = r.idle_cpu {
                let _ = writeln!(
                    o,
                    "{},{c},{},idle,,,,,,,,,,,{:.2},,",
                    r.transport,
                    r.size,
                    i * 100.0
                );
            }
            let ring = r.ring_bytes.map_or_else(String::new, |b| b.to_string());
            for line in o.lines() {
                let _ = writeln!(out, "{line},{ring}");
            }
        }
        out
    }
}

/// One record, every figure of its round, for the JSON's `raw` array.
fn raw(r: &Record) -> Value {
    let p = &r.result;
    json!({
        "transport": r.transport, "size": r.size, "round": r.round, "ring_bytes": r.ring_bytes,
        "other_load": r.other_load,
        "rtt_p50_ns": p.rtt.map(|x| x.p50), "rtt_p99_ns": p.rtt.map(|x| x.p99),
        "rtt_samples": p.rtt.map(|x| x.samples),
        "rtt_block_p50_ns": p.rtt_block.map(|x| x.p50),
        "rtt_block_samples": p.rtt_block.map(|x| x.samples),
        "bracket_floor_before_ns": p.bracket.map(|b| b.0),
        "bracket_floor_after_ns": p.bracket.map(|b| b.1),
        "msgs_per_s": p.stream.map(|x| x.msgs_per_s),
        "batch_msgs_per_s": p.stream_batch.map(|x| x.msgs_per_s),
        "oneway_p50_ns": p.oneway.map(|x| x.p50),
        "idle_cpu": p.idle_cpu,
    })
}

/// `a` with `b`'s keys added.
pub fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// A ratio with what it is against: `1.23x pipe`.
pub fn ratio(x: f64, best: &str) -> String {
    format!("{x:.2}x {best}")
}

/// Nanoseconds, human-sized.
pub fn t(ns: f64) -> String {
    if !ns.is_finite() {
        "-".into()
    } else if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// A count with an SI suffix.
pub fn si(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2} G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// A message size, human-sized.
pub fn size(b: usize) -> String {
    if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{}MiB", b >> 20)
    } else if b >= 1024 && b.is_multiple_of(1024) {
        format!("{}KiB", b >> 10)
    } else {
        format!("{b}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(p50: f64) -> Percentiles {
        Percentiles {
            samples: 100,
            p50,
            p90: p50 * 1.1,
            p99: p50 * 1.5,
            p999: p50 * 2.0,
            p9999: p50 * 3.0,
            max: p50 * 4.0,
        }
    }

    fn sample_report() -> Report {
        let rec = |transport: &str, class, p50: f64, rate: f64| Record {
            transport: transport.into(),
            class,
            size: 64,
            round: 1,
            ring_bytes: None,
            other_load: None,
            result: PairResult {
                rtt: Some(pct(p50)),
                oneway: Some(pct(p50 / 2.0)),
                stream: Some(Throughput {
                    msgs_per_s: rate,
                    mb_per_s: rate * 64.0 / 1e6,
                    cpu_ns_per_msg: 100.0,
                }),
                idle_cpu: Some(0.001),
                ..PairResult::default()
            },
        };
        let records = vec![
            rec("pipe", Class::Kernel, 60_000.0, 1e6),
            rec("tcp", Class::Kernel, 70_000.0, 2e6),
            rec("pipe", Class::Kernel, 40_000.0, 1e6),
            rec("pipe", Class::Kernel, 50_000.0, 1e6),
        ];
        let machine = Machine {
            cpu: "test cpu".into(),
            cores: 2,
            kernel: "6.0".into(),
            placement: "parent cpu0, peer cpu1".into(),
        };
        Report::build(machine, &records, vec![], 3, 10_000, false)
    }

    #[test]
    fn rows_take_the_median_across_rounds_and_name_the_best_kernel_transport() {
        let r = sample_report();
        let pipe = r.rows.iter().find(|r| r.transport == "pipe").unwrap();
        assert_eq!(pipe.rounds, 3);
        assert_eq!(pipe.rtt.unwrap().median.p50, 50_000.0);
        assert_eq!(pipe.rtt.unwrap().spread, (40_000.0, 60_000.0));
        assert_eq!(r.best_kernel_rtt(64), Some(("pipe", 50_000.0)));
        assert_eq!(r.best_kernel_stream(64), Some(("tcp", 2e6)));
        assert!(r.table().contains("(best kernel)"));
    }

    #[test]
    fn rounds_under_competing_load_are_left_out_when_clean_ones_exist() {
        let rec = |round, p50: f64, load: f64| Record {
            transport: "shmbus-spsc".into(),
            class: Class::SharedMemory,
            size: 8,
            round,
            ring_bytes: Some(65536),
            other_load: Some(load),
            result: PairResult {
                rtt: Some(pct(p50)),
                ..PairResult::default()
            },
        };
        let m = |records: &[Record]| {
            let machine = Machine {
                cpu: "c".into(),
                cores: 2,
                kernel: "k".into(),
                placement: "p".into(),
            };
            Report::build(machine, records, vec![], 3, 1, false)
        };
        let mixed = m(&[rec(1, 150.0, 0.0), rec(2, 9000.0, 0.9), rec(3, 170.0, 0.01)]);
        let row = &mixed.rows[0];
        assert_eq!((row.rounds, row.set_aside, row.contaminated), (2, 1, false));
        assert_eq!(row.rtt.unwrap().median.p50, 160.0);
        assert!(mixed.table().contains("1 measurement(s)"));
        let dirty = m(&[rec(1, 9000.0, 0.5), rec(2, 8000.0, 0.9)]);
        let row = &dirty.rows[0];
        assert_eq!((row.rounds, row.set_aside, row.contaminated), (2, 0, true));
        assert!(dirty.table().contains("shmbus-spsc*"));
    }

    #[test]
    fn json_follows_the_issue_schema() {
        let j = sample_report().json();
        let m = j["machine"].as_object().unwrap();
        assert!(
            m["cpu"].is_string()
                && m["cores"].is_u64()
                && m["kernel"].is_string()
                && m["placement"].is_string()
        );
        let results = j["results"].as_array().unwrap();
        let keys = |kind: &str| -> Vec<Vec<String>> {
            results
                .iter()
                .filter(|r| r["kind"] == kind)
                .map(|r| {
                    let mut k: Vec<String> = r.as_object().unwrap().keys().cloned().collect();
                    k.sort();
                    k
                })
                .collect()
        };
        let sorted = |v: &[&str]| {
            let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            v.sort();
            v
        };
        let rtt = sorted(&[
            "transport",
            "size",
            "kind",
            "samples",
            "p50_ns",
            "p90_ns",
            "p99_ns",
            "p999_ns",
            "p9999_ns",
            "max_ns",
        ]);
        let thr = sorted(&[
            "transport",
            "size",
            "kind",
            "msgs_per_s",
            "mb_per_s",
            "cpu_ns_per_msg",
        ]);
        assert_eq!(keys("rtt"), vec![rtt.clone(), rtt]);
        assert_eq!(keys("throughput"), vec![thr.clone(), thr]);
        for r in results {
            assert!(r["transport"].is_string() && r["size"].is_u64());
        }
        let first = &results[0];
        assert!(first["p50_ns"].is_number() && first["samples"].is_u64());
    }

    #[test]
    fn csv_has_one_line_per_kind() {
        let csv = sample_report().csv();
        let lines: Vec<&str> = csv.lines().collect();
        let columns = lines[0].split(',').count();
        assert_eq!(lines.len(), 1 + 2 * 4);
        assert!(
            lines.iter().all(|l| l.split(',').count() == columns),
            "{csv}"
        );
    }
}
