//! The terminal tables, drawn by comfy-table in its Markdown style (so a run's output pastes
//! into a README as is).

use crate::report::{ratio, si, size, t, Report, Row, CONTAMINATED};
use crate::transport::Class;
use comfy_table::{presets, CellAlignment, Table};
use std::fmt::Write as _;

/// A table with `header`, every column but the first two right-aligned.
pub fn table(header: &[&str]) -> Table {
    let mut tb = Table::new();
    tb.load_style(presets::ASCII_MARKDOWN);
    tb.set_header(header.iter().copied());
    for i in 2..header.len() {
        if let Some(c) = tb.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    tb
}

/// Left-aligns the last column of `tb` (a verdict or a note, not a figure).
pub fn text_last(tb: &mut Table) {
    let last = tb.column_count().saturating_sub(1);
    if let Some(c) = tb.column_mut(last) {
        c.set_cell_alignment(CellAlignment::Left);
    }
}

/// `x` over the best kernel row (`lower` is better for round trips), or the marker of the
/// best kernel row itself.
fn vs_kernel(r: &Row, best: Option<(&str, f64)>, x: f64, lower: bool) -> String {
    match best {
        Some((name, b)) if r.class != Class::Kernel || name != r.transport => {
            ratio(if lower { b / x } else { x / b }, name)
        }
        Some(_) => "(best kernel)".into(),
        None => String::new(),
    }
}

impl Report {
    /// The terminal tables.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let m = &self.machine;
        let _ = writeln!(
            o,
            "machine: {} | {} cores | Linux {} | {}",
            m.cpu, m.cores, m.kernel, m.placement
        );
        let _ = writeln!(
            o,
            "figures are medians of {} interleaved rounds; spread = lowest..highest round{}",
            self.rounds,
            if self.quick {
                " (--quick: short phases, thin tails)"
            } else {
                ""
            }
        );
        if let Some(c) = self.clock_read_ns {
            let _ = writeln!(
                o,
                "clock: one CLOCK_MONOTONIC read costs {c:.1} ns (calibrated); each per-round-trip \
                 sample carries about one, a block of {} round trips carries one in all",
                self.rtt_block
            );
        }
        for n in &self.notes {
            let _ = writeln!(o, "note: {n}");
        }
        let set_aside: usize = self.rows.iter().map(|r| r.set_aside).sum();
        let limit = CONTAMINATED * 100.0;
        if set_aside > 0 {
            let _ = writeln!(
                o,
                "note: {set_aside} measurement(s) taken while other processes used over {limit:.0} % \
                 of a core were left out of the medians (cleaner rounds of the same row exist)"
            );
        }
        if self.rows.iter().any(|r| r.contaminated) {
            let _ = writeln!(
                o,
                "note: * = every round of that row ran while other processes used over {limit:.0} % of a core"
            );
        }
        self.rtt_table(&mut o);
        self.stream_table(&mut o);
        self.oneway_table(&mut o);
        let idle: Vec<&Row> = self.rows.iter().filter(|r| r.idle_cpu.is_some()).collect();
        if !idle.is_empty() {
            let mut tb = table(&["transport", "", "idle CPU"]);
            for r in idle {
                tb.add_row(vec![
                    r.label(),
                    String::new(),
                    format!("{:.1} %", r.idle_cpu.unwrap_or(0.0) * 100.0),
                ]);
            }
            let _ = write!(
                o,
                "\nIDLE RECEIVER CPU (blocked in recv, nothing sent)\n{tb}\n"
            );
        }
        o += &crate::ratios::table(self);
        o
    }

    fn rtt_table(&self, o: &mut String) {
        let block = format!("p50 (blocks of {})", self.rtt_block);
        let mut tb = table(&[
            "size",
            "transport",
            "ring",
            "p50",
            &block,
            "vs bracketing floor",
            "p90",
            "p99",
            "p99.9",
            "max",
            "p50 spread",
            "vs best kernel",
        ]);
        let mut any = false;
        for r in &self.rows {
            let Some(a) = r.rtt else { continue };
            any = true;
            let p = a.median;
            let b = r.rtt_block.map(|b| b.median.p50);
            tb.add_row(vec![
                size(r.size),
                r.label(),
                r.ring_label(),
                t(p.p50),
                b.map_or_else(|| "-".into(), t),
                match (r.vs_floor, r.floor_ns) {
                    (Some(v), Some(f)) => format!("{v:.2}x of {}", t(f)),
                    _ => "-".into(),
                },
                t(p.p90),
                t(p.p99),
                t(p.p999),
                t(p.max),
                self.spread_text(r, t(a.spread.0), t(a.spread.1)),
                vs_kernel(r, self.best_kernel_rtt(r.size), b.unwrap_or(p.p50), true),
            ]);
        }
        if any {
            let _ = write!(
                o,
                "\nROUND TRIP (ping-pong; p50 timed per round trip and per block; the bracketing \
                 floor is floor-cacheline run in the same process pair before and after)\n{tb}\n"
            );
        }
    }

    fn stream_table(&self, o: &mut String) {
        let batched = format!("batched ({}/call)", crate::driver::BATCH);
        let mut tb = table(&[
            "size",
            "transport",
            "ring",
            "msgs/s",
            "MB/s",
            "CPU/msg (both)",
            "msgs/s spread",
            &batched,
            "vs best kernel",
        ]);
        let mut any = false;
        for r in &self.rows {
            let Some(a) = r.stream else { continue };
            any = true;
            let s = a.median;
            let best = self.best_kernel_stream(r.size);
            tb.add_row(vec![
                size(r.size),
                r.label(),
                r.ring_label(),
                si(s.msgs_per_s),
                format!("{:.1}", s.mb_per_s),
                t(s.cpu_ns_per_msg),
                self.spread_text(r, si(a.spread.0), si(a.spread.1)),
                r.stream_batch
                    .map_or_else(|| "-".into(), |b| si(b.median.msgs_per_s)),
                vs_kernel(r, best, s.msgs_per_s, false),
            ]);
        }
        if any {
            let _ = write!(o, "\nSTREAMING (one way)\n{tb}\n");
        }
    }

    fn oneway_table(&self, o: &mut String) {
        let mut tb = table(&[
            "size",
            "transport",
            "ring",
            "p50",
            "p99",
            "p99.9",
            "max",
            "p50 spread",
        ]);
        let mut any = false;
        for r in &self.rows {
            let Some(a) = r.oneway else { continue };
            any = true;
            let p = a.median;
            tb.add_row(vec![
                size(r.size),
                r.label(),
                r.ring_label(),
                t(p.p50),
                t(p.p99),
                t(p.p999),
                t(p.max),
                self.spread_text(r, t(a.spread.0), t(a.spread.1)),
            ]);
        }
        if any {
            let _ = write!(
                o,
                "\nONE WAY at {} msgs/s offered (CO-corrected)\n{tb}\n",
                si(self.rate as f64)
            );
        }
    }
}
