//! The ratios the issue asks of every run, per message size and ring size, from the rows'
//! medians: shmbus against the minimal ring, the floors, its own layers, iceoryx2 and the
//! best kernel paths (busy-polling and blocking).
//!
//! Round-trip ratios use the block-timed p50 where the row has one. Each ratio is oriented so
//! that it reads as the sentence: `spsc / floor-ring` is streaming rate over rate
//! (above 1: shmbus faster), `spsc / floor` is round trip over round trip (above 1: slower
//! than the floor), `kernel / spsc` is how many times faster shmbus is.

use crate::report::{Report, Row};
use comfy_table::{presets, CellAlignment, Table};
use serde_json::{json, Value};

const SPSC: &str = "shmbus-spsc";

/// The ratios at one size and ring size.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ratios {
    /// Message size, bytes.
    pub size: usize,
    /// Ring data bytes of the shmbus rows compared (`None`: the run had no ring row).
    pub ring_bytes: Option<u64>,
    /// `shmbus-spsc` msgs/s over `floor-ring` msgs/s.
    pub spsc_over_floor_ring: Option<f64>,
    /// `shmbus-spsc` batched msgs/s over `floor-ring` msgs/s.
    pub spsc_batch_over_floor_ring: Option<f64>,
    /// `shmbus-spsc` round trip over its bracketing floor's (same process pair).
    pub spsc_over_floor: Option<f64>,
    /// `shmbus-channel` round trip over `shmbus-spsc`'s.
    pub channel_over_spsc_rtt: Option<f64>,
    /// `shmbus-channel` msgs/s over `shmbus-spsc`'s.
    pub channel_over_spsc_stream: Option<f64>,
    /// `shmbus-mpmc` round trip over `shmbus-spsc`'s.
    pub mpmc_over_spsc_rtt: Option<f64>,
    /// `iceoryx2` round trip over `shmbus-spsc`'s (speed-up).
    pub iceoryx2_over_spsc_rtt: Option<f64>,
    /// `shmbus-spsc` msgs/s over `iceoryx2`'s.
    pub spsc_over_iceoryx2_stream: Option<f64>,
    /// The best busy-polling kernel round trip over `shmbus-spsc`'s (speed-up).
    pub spin_kernel_over_spsc_rtt: Option<f64>,
    /// The best blocking kernel round trip over `shmbus-spsc`'s (speed-up).
    pub blocking_kernel_over_spsc_rtt: Option<f64>,
    /// `shmbus-spsc` msgs/s over the best kernel's.
    pub spsc_over_kernel_stream: Option<f64>,
}

fn rtt(r: &Row) -> Option<f64> {
    r.rtt_block
        .map(|a| a.median.p50)
        .or(r.rtt.map(|a| a.median.p50))
}

fn rate(r: &Row) -> Option<f64> {
    r.stream.map(|a| a.median.msgs_per_s)
}

fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b > 0.0).then_some(a / b)
}

/// Every size and ring size of the run where `shmbus-spsc` was measured.
pub fn compute(report: &Report) -> Vec<Ratios> {
    let mut out = Vec::new();
    for spsc in report.rows.iter().filter(|r| r.transport == SPSC) {
        let (size, ring) = (spsc.size, spsc.ring_bytes);
        let other = |name: &str| report.row(name, size, ring);
        let kernel = |spinning| {
            report
                .best_kernel_rtt_of(size, Some(spinning))
                .map(|(_, v)| v)
        };
        let (s_rtt, s_rate) = (rtt(spsc), rate(spsc));
        out.push(Ratios {
            size,
            ring_bytes: ring,
            spsc_over_floor_ring: div(s_rate, other("floor-ring").and_then(rate)),
            spsc_batch_over_floor_ring: div(
                spsc.stream_batch.map(|a| a.median.msgs_per_s),
                other("floor-ring").and_then(rate),
            ),
            spsc_over_floor: div(s_rtt, spsc.floor_ns),
            channel_over_spsc_rtt: div(other("shmbus-channel").and_then(rtt), s_rtt),
            channel_over_spsc_stream: div(other("shmbus-channel").and_then(rate), s_rate),
            mpmc_over_spsc_rtt: div(other("shmbus-mpmc").and_then(rtt), s_rtt),
            iceoryx2_over_spsc_rtt: div(other("iceoryx2").and_then(rtt), s_rtt),
            spsc_over_iceoryx2_stream: div(s_rate, other("iceoryx2").and_then(rate)),
            spin_kernel_over_spsc_rtt: div(kernel(true), s_rtt),
            blocking_kernel_over_spsc_rtt: div(kernel(false), s_rtt),
            spsc_over_kernel_stream: div(s_rate, report.best_kernel_stream(size).map(|b| b.1)),
        });
    }
    out
}

fn cell(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{v:.2}x"))
}

/// The RATIOS section (empty when `shmbus-spsc` was not measured).
pub fn table(report: &Report) -> String {
    let rows = compute(report);
    if rows.is_empty() {
        return String::new();
    }
    let mut tb = Table::new();
    tb.load_style(presets::ASCII_MARKDOWN);
    tb.set_header(vec![
        "size",
        "ring",
        "spsc/floor-ring msgs/s",
        "batched spsc/floor-ring",
        "spsc/floor rtt",
        "channel/spsc rtt",
        "channel/spsc msgs/s",
        "mpmc/spsc rtt",
        "iceoryx2/spsc rtt",
        "spsc/iceoryx2 msgs/s",
        "busy kernel/spsc rtt",
        "blocking kernel/spsc rtt",
        "spsc/kernel msgs/s",
    ]);
    for r in &rows {
        tb.add_row(vec![
            crate::report::size(r.size),
            r.ring_bytes.map_or_else(|| "-".into(), crate::ring::label),
            cell(r.spsc_over_floor_ring),
            cell(r.spsc_batch_over_floor_ring),
            cell(r.spsc_over_floor),
            cell(r.channel_over_spsc_rtt),
            cell(r.channel_over_spsc_stream),
            cell(r.mpmc_over_spsc_rtt),
            cell(r.iceoryx2_over_spsc_rtt),
            cell(r.spsc_over_iceoryx2_stream),
            cell(r.spin_kernel_over_spsc_rtt),
            cell(r.blocking_kernel_over_spsc_rtt),
            cell(r.spsc_over_kernel_stream),
        ]);
    }
    for i in 2..13 {
        if let Some(c) = tb.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    format!(
        "\nRATIOS (of the rows' medians; round trips block-timed; spsc/floor is against the \
         bracketing floor of the same process pair)\n{tb}\n"
    )
}

/// The ratios for the JSON's `ratios` key.
pub fn json(report: &Report) -> Value {
    Value::Array(
        compute(report)
            .iter()
            .map(|r| {
                json!({
                    "size": r.size, "ring_bytes": r.ring_bytes,
                    "spsc_over_floor_ring_msgs": r.spsc_over_floor_ring,
                    "spsc_batch_over_floor_ring_msgs": r.spsc_batch_over_floor_ring,
                    "spsc_over_bracket_floor_rtt": r.spsc_over_floor,
                    "channel_over_spsc_rtt": r.channel_over_spsc_rtt,
                    "channel_over_spsc_msgs": r.channel_over_spsc_stream,
                    "mpmc_over_spsc_rtt": r.mpmc_over_spsc_rtt,
                    "iceoryx2_over_spsc_rtt": r.iceoryx2_over_spsc_rtt,
                    "spsc_over_iceoryx2_msgs": r.spsc_over_iceoryx2_stream,
                    "busy_kernel_over_spsc_rtt": r.spin_kernel_over_spsc_rtt,
                    "blocking_kernel_over_spsc_rtt": r.blocking_kernel_over_spsc_rtt,
                    "spsc_over_kernel_msgs": r.spsc_over_kernel_stream,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{PairResult, Throughput};
    use crate::report::{Machine, Record};
    use crate::stats::Percentiles;
    use crate::transport::Class;

    fn rec(t: &str, class: Class, ring: Option<u64>, rtt: f64, rate: f64) -> Record {
        Record {
            transport: t.into(),
            class,
            size: 1024,
            round: 1,
            ring_bytes: ring,
            other_load: Some(0.0),
            result: PairResult {
                rtt: Some(Percentiles {
                    samples: 10,
                    p50: rtt + 25.0,
                    ..Percentiles::default()
                }),
                rtt_block: Some(Percentiles {
                    samples: 10,
                    p50: rtt,
                    ..Percentiles::default()
                }),
                bracket: Some((190.0, 210.0)),
                stream: Some(Throughput {
                    msgs_per_s: rate,
                    mb_per_s: rate * 1024.0 / 1e6,
                    cpu_ns_per_msg: 1.0,
                }),
                ..PairResult::default()
            },
        }
    }

    #[test]
    fn ratios_pair_rows_of_the_same_ring_size_and_split_the_kernel_paths() {
        let k = 1 << 10;
        let records = vec![
            rec("floor-ring", Class::Floor, Some(64 * k), 300.0, 4e6),
            rec("floor-ring", Class::Floor, Some(1024 * k), 300.0, 10e6),
            rec(SPSC, Class::SharedMemory, Some(64 * k), 400.0, 2e6),
            rec(SPSC, Class::SharedMemory, Some(1024 * k), 400.0, 10e6),
            // MPMC's slots make its bytes differ from the size asked.
            rec("shmbus-mpmc", Class::SharedMemory, Some(68 * k), 600.0, 1e6),
            rec(
                "shmbus-mpmc",
                Class::SharedMemory,
                Some(1088 * k),
                500.0,
                1e6,
            ),
            rec("pipe", Class::Kernel, None, 40_000.0, 1e5),
            rec("pipe-spin", Class::Kernel, None, 4_000.0, 2e5),
        ];
        let machine = Machine {
            cpu: "c".into(),
            cores: 2,
            kernel: "k".into(),
            placement: "p".into(),
        };
        let report = Report::build(machine, &records, vec![], 1, 1, false);
        let r = compute(&report);
        assert_eq!(r.len(), 2);
        let (small, big) = (&r[0], &r[1]);
        assert_eq!(small.ring_bytes, Some(64 * k));
        assert_eq!(small.spsc_over_floor_ring, Some(0.5));
        assert_eq!(big.spsc_over_floor_ring, Some(1.0));
        assert_eq!(small.mpmc_over_spsc_rtt, Some(1.5));
        assert_eq!(big.mpmc_over_spsc_rtt, Some(1.25));
        // Block-timed round trips against the mean of the bracketing floors (200 ns).
        assert_eq!(small.spsc_over_floor, Some(2.0));
        assert_eq!(small.spin_kernel_over_spsc_rtt, Some(10.0));
        assert_eq!(small.blocking_kernel_over_spsc_rtt, Some(100.0));
        assert_eq!(big.spsc_over_kernel_stream, Some(50.0));
        assert_eq!(small.channel_over_spsc_rtt, None, "not measured");
        assert!(table(&report).contains("| 1KiB | 64 KiB |"));
    }
}
