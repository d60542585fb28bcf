//! The SVG chart (plotters, SVG backend): three panels against message size, log-log.
//!
//! 1. Round trip p50 (block-timed where measured).
//! 2. Streaming msgs/s.
//! 3. The ratio view: how many times faster `shmbus-spsc` is than the best kernel path
//!    (busy-polling and blocking, round trip; and streaming), and how it stands against the
//!    floors (the bracketing floor's round trip over its own, its rate over `floor-ring`'s),
//!    every ratio oriented so that above 1 means shmbus ahead.
//!
//! Transports are grouped by family, one hue and one marker per family: shmbus in blues with
//! circles, the kernel paths in oranges with triangles, the floors in greys with squares,
//! iceoryx2 in green with crosses. The rows a reader looks for are drawn thick and labelled
//! at their right end (no legend); every other row of a family is a thin unlabelled line of
//! the family's hue. The kernel family is summarised by its best path at each size
//! (busy-polling and blocking). A run with several ring sizes is charted at its first.

use crate::report::{Report, Row};
use crate::transport::Class;
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// What a line belongs to: sets its hue and marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Shmbus,
    Kernel,
    Floor,
    Peer,
}

impl Family {
    fn of(r: &Row) -> Family {
        match r.class {
            Class::Floor => Family::Floor,
            Class::Kernel => Family::Kernel,
            Class::SharedMemory if r.transport.starts_with("iceoryx2") => Family::Peer,
            // shmbus's rows, and `eventfd` (shmbus rings woken by an eventfd).
            Class::SharedMemory => Family::Shmbus,
        }
    }

    /// The family's hue for its `i`-th labelled line.
    fn colour(self, i: usize) -> RGBColor {
        let shades: &[RGBColor] = match self {
            Family::Shmbus => &[
                RGBColor(0, 82, 180),
                RGBColor(60, 150, 230),
                RGBColor(0, 40, 110),
                RGBColor(110, 110, 230),
            ],
            Family::Kernel => &[RGBColor(213, 94, 0), RGBColor(190, 30, 30)],
            Family::Floor => &[RGBColor(40, 40, 40), RGBColor(130, 130, 130)],
            Family::Peer => &[RGBColor(0, 150, 100), RGBColor(100, 190, 40)],
        };
        shades[i % shades.len()]
    }
}

/// One line of a panel.
struct Line {
    label: Option<String>,
    family: Family,
    colour: RGBColor,
    points: Vec<(f64, f64)>,
}

/// The rows a reader looks for: labelled and thick, in this order.
const FEATURED: [&str; 7] = [
    "shmbus-spsc",
    "shmbus-channel",
    "shmbus-mpmc",
    "shmbus-spsc-zc",
    "floor-ring",
    "floor-cacheline",
    "floor-memcpy",
];

/// One line per transport (its first ring size) with `value` at each size, featured rows
/// labelled; plus the best kernel path(s) as labelled summary lines.
fn lines(
    report: &Report,
    value: fn(&Row) -> Option<f64>,
    kernel: &[(String, Vec<(f64, f64)>)],
) -> Vec<Line> {
    let mut names: Vec<&str> = Vec::new();
    for r in &report.rows {
        if !names.contains(&r.transport.as_str()) {
            names.push(&r.transport);
        }
    }
    let mut out = Vec::new();
    let mut shade = [0usize; 4];
    for name in names {
        let points: Vec<(f64, f64)> = report
            .rows
            .iter()
            .filter(|r| r.transport == name)
            .filter(|r| report.row(name, r.size, None).map(|f| f.ring_bytes) == Some(r.ring_bytes))
            .filter_map(|r| value(r).map(|v| (r.size as f64, v)))
            .filter(|p| p.1.is_finite() && p.1 > 0.0)
            .collect();
        let Some(first) = report.rows.iter().find(|r| r.transport == name) else {
            continue;
        };
        if points.is_empty() {
            continue;
        }
        let family = Family::of(first);
        let featured = FEATURED.contains(&name) || family == Family::Peer;
        if family == Family::Kernel && !featured {
            // Kernel rows: thin, unlabelled; the family is summarised by its best path.
            out.push(Line {
                label: None,
                family,
                colour: family.colour(0),
                points,
            });
            continue;
        }
        let colour = if featured {
            let i = &mut shade[family as usize];
            *i += 1;
            family.colour(*i - 1)
        } else {
            family.colour(0)
        };
        out.push(Line {
            label: featured.then(|| name.to_string()),
            family,
            colour,
            points,
        });
    }
    for (i, (label, points)) in kernel.iter().enumerate() {
        if !points.is_empty() {
            out.push(Line {
                label: Some(label.clone()),
                family: Family::Kernel,
                colour: Family::Kernel.colour(i),
                points: points.clone(),
            });
        }
    }
    out
}

fn rtt(r: &Row) -> Option<f64> {
    r.rtt_block
        .map(|a| a.median.p50)
        .or(r.rtt.map(|a| a.median.p50))
}

fn rate(r: &Row) -> Option<f64> {
    r.stream.map(|a| a.median.msgs_per_s)
}

/// Log-axis bounds around `values`.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        (0.1, 10.0)
    } else {
        (lo / 1.6, hi * 1.6)
    }
}

/// Draws `lines` on `area`: thin unlabelled lines first, then the labelled ones with their
/// markers and a label at the right end, labels nudged apart vertically.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    y_desc: &str,
    lines: &[Line],
    y_fmt: &dyn Fn(&f64) -> String,
    unity: bool,
) -> Result<()> {
    let e = |x: &dyn std::fmt::Display| anyhow!("chart: {x}");
    let (xmin, xmax) = bounds(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)));
    let (ymin, ymax) = bounds(
        lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .chain(unity.then_some(1.0)),
    );
    // Room on the right for the labels: the x axis runs on past the largest size.
    let xmax = xmax * 8.0;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((xmin..xmax).log_scale(), (ymin..ymax).log_scale())
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("message size, bytes")
        .y_desc(y_desc)
        .x_label_formatter(&|v| {
            if *v <= xmax / 8.0 {
                crate::report::size(v.round() as usize)
            } else {
                String::new()
            }
        })
        .y_label_formatter(y_fmt)
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|x| e(&x))?;
    if unity {
        chart
            .draw_series(LineSeries::new(
                [(xmin, 1.0), (xmax / 8.0, 1.0)],
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(|x| e(&x))?;
    }
    for l in lines.iter().filter(|l| l.label.is_none()) {
        chart
            .draw_series(LineSeries::new(
                l.points.clone(),
                l.colour.mix(0.35).stroke_width(1),
            ))
            .map_err(|x| e(&x))?;
    }
    let mut labels = Vec::new();
    for l in lines.iter().filter(|l| l.label.is_some()) {
        let c = l.colour;
        chart
            .draw_series(LineSeries::new(l.points.clone(), c.stroke_width(3)))
            .map_err(|x| e(&x))?;
        let style = c.filled();
        match l.family {
            Family::Shmbus => chart.draw_series(
                l.points
                    .iter()
                    .map(|&p| EmptyElement::at(p) + Circle::new((0, 0), 4, style)),
            ),
            Family::Kernel => chart.draw_series(
                l.points
                    .iter()
                    .map(|&p| EmptyElement::at(p) + TriangleMarker::new((0, 0), 6, style)),
            ),
            Family::Floor => chart.draw_series(
                l.points
                    .iter()
                    .map(|&p| EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], style)),
            ),
            Family::Peer => chart.draw_series(
                l.points
                    .iter()
                    .map(|&p| EmptyElement::at(p) + Cross::new((0, 0), 5, c.stroke_width(2))),
            ),
        }
        .map_err(|x| e(&x))?;
        if let (Some(label), Some(&last)) = (&l.label, l.points.last()) {
            labels.push((label.clone(), c, last));
        }
    }
    // Nudge the labels apart: at least 14 px between neighbours (the plot is ~500 px high).
    let gap = (ymax.log10() - ymin.log10()) * 14.0 / 500.0;
    labels.sort_by(|a, b| a.2 .1.total_cmp(&b.2 .1));
    let mut last_y = f64::NEG_INFINITY;
    for (label, c, (x, y)) in labels {
        let ly = y.log10().max(last_y + gap);
        last_y = ly;
        chart
            .draw_series(std::iter::once(Text::new(
                label,
                (x * 1.25, 10f64.powf(ly)),
                ("sans-serif", 13).into_font().color(&c),
            )))
            .map_err(|x| e(&x))?;
    }
    Ok(())
}

/// `(label, points)` of the best kernel path per size: busy-polling and blocking.
fn best_kernel(
    report: &Report,
    value: fn(&Report, usize, bool) -> Option<f64>,
) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut sizes: Vec<usize> = report.rows.iter().map(|r| r.size).collect();
    sizes.dedup();
    [
        (true, "best kernel, busy-polling"),
        (false, "best kernel, blocking"),
    ]
    .iter()
    .map(|&(spin, label)| {
        (
            label.to_string(),
            sizes
                .iter()
                .filter_map(|&s| value(report, s, spin).map(|v| (s as f64, v)))
                .collect(),
        )
    })
    .collect()
}

fn kernel_rtt(report: &Report, size: usize, spin: bool) -> Option<f64> {
    report
        .rows
        .iter()
        .filter(|r| r.size == size && r.class == Class::Kernel)
        .filter(|r| r.transport.ends_with("-spin") == spin)
        .filter_map(rtt)
        .min_by(f64::total_cmp)
}

fn kernel_rate(report: &Report, size: usize, spin: bool) -> Option<f64> {
    report
        .rows
        .iter()
        .filter(|r| r.size == size && r.class == Class::Kernel)
        .filter(|r| r.transport.ends_with("-spin") == spin)
        .filter_map(rate)
        .max_by(f64::total_cmp)
}

/// The ratio view's lines.
fn ratio_lines(report: &Report) -> Vec<Line> {
    let r = crate::ratios::compute(report);
    let first = r.first().map(|x| x.ring_bytes);
    let r: Vec<_> = r
        .into_iter()
        .filter(|x| Some(x.ring_bytes) == first)
        .collect();
    let series = |label: &str, family, i, f: fn(&crate::ratios::Ratios) -> Option<f64>| Line {
        label: Some(label.into()),
        family,
        colour: Family::colour(family, i),
        points: r
            .iter()
            .filter_map(|x| f(x).map(|v| (x.size as f64, v)))
            .filter(|p| p.1.is_finite() && p.1 > 0.0)
            .collect(),
    };
    vec![
        series("vs busy-poll kernel, rtt", Family::Kernel, 0, |x| {
            x.spin_kernel_over_spsc_rtt
        }),
        series("vs blocking kernel, rtt", Family::Kernel, 1, |x| {
            x.blocking_kernel_over_spsc_rtt
        }),
        series("vs best kernel, msgs/s", Family::Shmbus, 1, |x| {
            x.spsc_over_kernel_stream
        }),
        series("floor / rtt (1 = at the floor)", Family::Floor, 0, |x| {
            x.spsc_over_floor.map(|v| 1.0 / v)
        }),
        series("msgs/s / floor-ring", Family::Floor, 1, |x| {
            x.spsc_over_floor_ring
        }),
    ]
    .into_iter()
    .filter(|l| !l.points.is_empty())
    .collect()
}

/// Writes the chart to `path`.
pub fn write_svg(report: &Report, path: &Path) -> Result<()> {
    let e = |x: &dyn std::fmt::Display| anyhow!("drawing {}: {x}", path.display());
    let root = SVGBackend::new(path, (1950, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let title = format!(
        "shmbus-bench: {} ({} cores), median of {} rounds — shmbus (blue, circles), kernel \
         (orange, triangles), floors (grey, squares), iceoryx2 (green, crosses)",
        report.machine.cpu, report.machine.cores, report.rounds
    );
    let root = root.titled(&title, ("sans-serif", 18)).map_err(|x| e(&x))?;
    let panels = root.split_evenly((1, 3));
    let rtt_lines = lines(report, rtt, &best_kernel(report, kernel_rtt));
    panel(
        &panels[0],
        "round trip p50 (lower is better)",
        "ns",
        &rtt_lines,
        &|v| crate::report::t(*v),
        false,
    )?;
    let rate_lines = lines(report, rate, &best_kernel(report, kernel_rate));
    panel(
        &panels[1],
        "streaming, one way (higher is better)",
        "messages per second",
        &rate_lines,
        &|v| crate::report::si(*v),
        false,
    )?;
    panel(
        &panels[2],
        "shmbus-spsc ratios (above 1: shmbus ahead)",
        "ratio",
        &ratio_lines(report),
        &|v| format!("{v}x"),
        true,
    )?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
