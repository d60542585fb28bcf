//! The SVG chart: round-trip latency percentiles and streaming throughput against message size,
//! one line per transport, both axes logarithmic.

use crate::report::Report;
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// Colours for successive transports (a colour-blind-friendly palette).
const PALETTE: [RGBColor; 15] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
    RGBColor(0, 0, 0),
    RGBColor(160, 40, 40),
    RGBColor(40, 40, 160),
    RGBColor(0, 90, 60),
    RGBColor(150, 100, 0),
    RGBColor(110, 60, 160),
    RGBColor(0, 150, 160),
    RGBColor(200, 0, 90),
];

/// Factor of empty log-axis space above the data, where the legend goes.
const LEGEND_HEADROOM: f64 = 300.0;

/// Log-axis bounds around `values`, with `headroom` times the largest value on top (room for
/// the legend above the data).
fn bounds(values: impl Iterator<Item = f64>, headroom: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        (1.0, 10.0)
    } else {
        (lo / 1.5, hi * headroom)
    }
}

/// Writes the chart to `path`.
pub fn write_svg(report: &Report, path: &Path) -> Result<()> {
    let e = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (1400, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let title = format!(
        "shmbus-bench: {} ({} cores), median of {} rounds",
        report.machine.cpu, report.machine.cores, report.rounds
    );
    let root = root.titled(&title, ("sans-serif", 20)).map_err(|x| e(&x))?;
    let (left, right) = root.split_horizontally(700);

    let mut names: Vec<&str> = Vec::new();
    for r in &report.rows {
        if !names.contains(&r.transport.as_str()) {
            names.push(&r.transport);
        }
    }
    let (smin, smax) = bounds(report.rows.iter().map(|r| r.size as f64), 1.5);

    // Left: round trip p50 (solid, dots) and p99.9 (thin, triangles).
    let (lmin, lmax) = bounds(
        report
            .rows
            .iter()
            .filter_map(|r| r.rtt)
            .flat_map(|a| [a.median.p50, a.median.p999]),
        LEGEND_HEADROOM,
    );
    let mut chart = ChartBuilder::on(&left)
        .caption(
            "round trip: p50 (solid) and p99.9 (thin)",
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((smin..smax).log_scale(), (lmin..lmax).log_scale())
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("message size (bytes)")
        .y_desc("round trip")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| crate::report::t(*v))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, name) in names.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        let pts = |f: fn(&crate::stats::Percentiles) -> f64| -> Vec<(f64, f64)> {
            report
                .rows
                .iter()
                .filter(|r| r.transport == *name)
                .filter_map(|r| r.rtt.map(|a| (r.size as f64, f(&a.median))))
                .collect()
        };
        let p50 = pts(|p| p.p50);
        if p50.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(p50.clone(), c.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(p50.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(|x| e(&x))?;
        let p999 = pts(|p| p.p999);
        chart
            .draw_series(LineSeries::new(p999.clone(), c.mix(0.6).stroke_width(1)))
            .map_err(|x| e(&x))?;
        chart
            .draw_series(
                p999.iter()
                    .map(|&p| TriangleMarker::new(p, 3, c.mix(0.6).filled())),
            )
            .map_err(|x| e(&x))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|x| e(&x))?;

    // Right: streaming throughput in MB/s.
    let (tmin, tmax) = bounds(
        report
            .rows
            .iter()
            .filter_map(|r| r.stream)
            .map(|a| a.median.mb_per_s),
        LEGEND_HEADROOM,
    );
    let mut chart = ChartBuilder::on(&right)
        .caption("one-way streaming throughput", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((smin..smax).log_scale(), (tmin..tmax).log_scale())
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("message size (bytes)")
        .y_desc("MB/s")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, name) in names.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        let pts: Vec<(f64, f64)> = report
            .rows
            .iter()
            .filter(|r| r.transport == *name)
            .filter_map(|r| r.stream.map(|a| (r.size as f64, a.median.mb_per_s)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(|x| e(&x))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
