//! Inline SVG charts drawn with plotters' SVG backend (no fonts, no JavaScript, no network):
//! grouped bars, HDR percentile-distribution curves on log scales, and per-second timelines.
//! Legends are HTML beside the chart (`legend`), so they never cover data.

use plotters::coord::combinators::{BindKeyPoints, IntoLogRange};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One line of a line chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

fn svg(
    width: u32,
    height: u32,
    draw: impl FnOnce(DrawingArea<SVGBackend, plotters::coord::Shift>) -> Result<(), String>,
) -> String {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        let _ = root.fill(&WHITE);
        if let Err(e) = draw(root.clone()) {
            let _ = root.draw(&Text::new(
                format!("chart failed: {e}"),
                (10, 20),
                ("sans-serif", 14),
            ));
        }
        let _ = root.present();
    }
    out
}

/// Bars grouped by `groups` (x), one bar per series in each group.
pub fn grouped_bars(
    title: &str,
    y_label: &str,
    groups: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> String {
    let width = (160 + groups.len() as u32 * (28 + 14 * series.len() as u32)).clamp(640, 1400);
    svg(width, 360, |root| {
        let max = series
            .iter()
            .flat_map(|(_, v)| v.iter().flatten())
            .cloned()
            .fold(0.0, f64::max)
            .max(1e-9);
        let n = series.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(60)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..groups.len() as f64, 0.0..max * 1.1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc(y_label)
            .y_label_formatter(&|y| short_number(*y))
            .draw()
            .map_err(|e| e.to_string())?;
        // Group names under each group, placed in pixels (mesh labels fall between groups).
        let style =
            TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, g) in groups.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            root.draw(&Text::new(g.clone(), (px, py + 6), style.clone()))
                .map_err(|e| e.to_string())?;
        }
        for (si, (_, values)) in series.iter().enumerate() {
            let c = color(si);
            chart
                .draw_series(values.iter().enumerate().filter_map(|(gi, v)| {
                    let v = (*v)?;
                    let x0 = gi as f64 + 0.1 + 0.8 * si as f64 / n;
                    Some(Rectangle::new(
                        [(x0, 0.0), (x0 + 0.8 / n * 0.9, v)],
                        c.filled(),
                    ))
                }))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// The fill of fault windows (server down, restart, switch-over) on timelines: opaque and drawn
/// under the lines, so it is this exact colour on screen (the browser test looks for it).
pub const FAULT_SHADE: RGBColor = RGBColor(253, 218, 218);

/// One bar per cell, cells down the side with their full ids (long ones abbreviated in the
/// middle), so labels never collide however many cells there are.
pub fn horizontal_bars(title: &str, x_label: &str, bars: &[(String, f64)]) -> String {
    const LABEL_CHARS: usize = 64;
    let labels: Vec<String> = bars
        .iter()
        .map(|(l, _)| super::pivot::abbreviate(l, LABEL_CHARS))
        .collect();
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(4);
    // ~6.6 px per character of 12 px sans-serif, plus room for the tick marks.
    let label_area = (longest as u32 * 66 / 10 + 16).clamp(80, 460);
    let height = 70 + 20 * bars.len().max(1) as u32;
    svg(1100, height, |root| {
        let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9);
        let n = bars.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(label_area)
            .build_cartesian_2d(0.0..max * 1.1, 0.0..n)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(x_label)
            .x_label_formatter(&|x| short_number(*x))
            .draw()
            .map_err(|e| e.to_string())?;
        let style = TextStyle::from(("sans-serif", 12).into_font())
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (i, label) in labels.iter().enumerate() {
            // The first bar at the top, in the order the cells ran.
            let y = n - i as f64 - 0.5;
            let (px, py) = chart.backend_coord(&(0.0, y));
            root.draw(&Text::new(label.clone(), (px - 6, py), style.clone()))
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                let y = n - i as f64;
                Rectangle::new([(0.0, y - 0.85), (*v, y - 0.15)], color(0).filled())
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Latency (ms, log y) against percentile (log x of 1/(1-q)), one line per cell: the HDR
/// "percentile distribution" plot, where tails are as visible as medians.
pub fn percentile_curves(title: &str, series: &[Series]) -> String {
    svg(900, 420, |root| {
        let ys = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|y| *y > 0.0);
        let (ymin, ymax) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
        let (ymin, ymax) = if ymin > ymax {
            (0.001, 1.0)
        } else {
            (ymin * 0.8, ymax * 1.25)
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            // The last tick's label ("99.999%") is centred on the right edge: room for its half.
            .margin_right(30)
            .x_label_area_size(40)
            .y_label_area_size(70)
            // Our own ticks here too: plotters labels a range within one decade with one tick.
            .build_cartesian_2d(
                (1.0..100_000.0).log_scale(),
                (ymin..ymax)
                    .log_scale()
                    .with_key_points(log_ticks(ymin, ymax)),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|y| short_number(*y))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, s) in series.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().cloned().filter(|p| p.1 > 0.0),
                    c.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// A per-second timeline, one line per cell; `log_y` for latencies. `windows` (from, to) in
/// seconds are shaded under the lines: when a fault was in force.
pub fn timeline(
    title: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
    windows: &[(f64, f64)],
) -> String {
    svg(900, 320, |root| {
        let xmax = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .chain(windows.iter().map(|w| w.1))
            .fold(1.0, f64::max);
        let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
        // Nothing above zero (no request finished in any second): a unit axis, not one spanning
        // nanounits whose tick labels all read "0" over each other.
        let highest = ys.clone().fold(0.0, f64::max);
        let ymax = if highest > 0.0 { highest * 1.15 } else { 1.0 };
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(70);
        macro_rules! finish {
            ($chart:expr, $ybottom:expr) => {{
                let mut chart = $chart;
                // At least a few pixels wide, so an instant (a failover) shows too.
                let min_width = (xmax + 1.0) / 150.0;
                chart
                    .draw_series(windows.iter().map(|(from, to)| {
                        let to = to.max(from + min_width);
                        Rectangle::new([(*from, $ybottom), (to, ymax)], FAULT_SHADE.filled())
                    }))
                    .map_err(|e| e.to_string())?;
                chart
                    .configure_mesh()
                    .x_desc("seconds")
                    .y_desc(y_label)
                    .y_label_formatter(&|y| short_number(*y))
                    .draw()
                    .map_err(|e| e.to_string())?;
                for (i, s) in series.iter().enumerate() {
                    let c = color(i);
                    chart
                        .draw_series(LineSeries::new(
                            s.points.iter().cloned().filter(|p| !log_y || p.1 > 0.0),
                            c.stroke_width(2),
                        ))
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            }};
        }
        if log_y {
            // At least a decade; two when there is nothing to draw, so ticks fall on round numbers.
            let decades = if highest > 0.0 { 10.0 } else { 100.0 };
            let ymin = ys
                .filter(|y| *y > 0.0)
                .fold(f64::MAX, f64::min)
                .min(ymax / decades)
                * 0.8;
            let ticks = log_ticks(ymin, ymax);
            finish!(
                builder
                    .build_cartesian_2d(
                        0.0..xmax + 1.0,
                        (ymin..ymax).log_scale().with_key_points(ticks),
                    )
                    .map_err(|e| e.to_string())?,
                ymin
            )
        } else {
            finish!(
                builder
                    .build_cartesian_2d(0.0..xmax + 1.0, 0.0..ymax)
                    .map_err(|e| e.to_string())?,
                0.0
            )
        }
    })
}

/// Tick values for a log axis over `lo..hi` that stay apart on a chart a few hundred pixels
/// high (plotters labels every tenth of a decade, and near its top those, with a doubled 1.0,
/// print over each other): 1 to 9 of a decade on a range narrower than 0.6 decades, 1, 2 and 5
/// of each decade over up to three, the powers of ten over more, and every other power over
/// more than eight.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = (hi / lo).log10();
    let (steps, every): (&[f64], i32) = match decades {
        d if d < 0.6 => (&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], 1),
        d if d <= 3.0 => (&[1.0, 2.0, 5.0], 1),
        d if d <= 8.0 => (&[1.0], 1),
        _ => (&[1.0], 2),
    };
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    (first..=last)
        .filter(|e| e.rem_euclid(every) == 0)
        .flat_map(|e| steps.iter().map(move |m| m * 10f64.powi(e)))
        .filter(|v| (lo..=hi).contains(v))
        .collect()
}

/// x = 1/(1-q) as a percentile label: 1 → "0%", 10 → "90%", 100 → "99%", ...
fn percentile_label(x: f64) -> String {
    let q = 1.0 - 1.0 / x;
    let p = q * 100.0;
    if p < 1.0 {
        "0%".into()
    } else if (p - p.round()).abs() < 1e-6 {
        format!("{p:.0}%")
    } else {
        let s = format!("{p:.4}");
        format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

pub fn short_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 0.1 {
        format!("{v:.1}")
    } else if a >= 0.001 {
        format!("{v:.3}")
    } else {
        // Below what three decimals show: keep neighbouring ticks apart ("2e-4", "4e-4").
        format!("{v:.0e}")
    }
}

/// An HTML legend for series drawn in `color(0..)` order.
pub fn legend(names: &[String]) -> String {
    let items: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let c = color(i);
            format!(
                "<span style=\"margin-right:14px;white-space:nowrap\"><span style=\"display:inline-block;width:12px;height:12px;background:rgb({},{},{});margin-right:4px;vertical-align:middle\"></span>{}</span>",
                c.0,
                c.1,
                c.2,
                n.replace('&', "&amp;").replace('<', "&lt;")
            )
        })
        .collect();
    format!("<div class=\"legend\">{}</div>", items.join(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The y tick labels of an SVG chart (the texts left of the plot, which read as numbers).
    fn y_labels(svg: &str) -> Vec<String> {
        let re = regex::Regex::new(r#"<text x="(\d+)"[^>]*>\s*([^<]*?)\s*</text>"#).unwrap();
        re.captures_iter(svg)
            .filter(|c| c[1].parse::<u32>().unwrap() < 80)
            .map(|c| c[2].to_string())
            .filter(|t| t.parse::<f64>().is_ok())
            .collect()
    }

    #[test]
    fn timelines_with_nothing_above_zero_have_distinct_tick_labels() {
        let flat = [Series {
            name: "a".into(),
            points: vec![(0.0, 0.0), (1.0, 0.0)],
        }];
        for log_y in [false, true] {
            let labels = y_labels(&timeline("t", "ms", &flat, log_y, &[]));
            let distinct: std::collections::BTreeSet<_> = labels.iter().collect();
            assert!(labels.len() >= 2, "{log_y}: {labels:?}");
            assert_eq!(distinct.len(), labels.len(), "{log_y}: {labels:?}");
        }
    }

    /// (y position, text) of the y tick labels.
    fn y_ticks(svg: &str) -> Vec<(f64, String)> {
        let re =
            regex::Regex::new(r#"<text x="(\d+)" y="(\d+)"[^>]*>\s*([^<]*?)\s*</text>"#).unwrap();
        re.captures_iter(svg)
            .filter(|c| c[1].parse::<u32>().unwrap() < 80 && c[3].parse::<f64>().is_ok())
            .map(|c| (c[2].parse().unwrap(), c[3].to_string()))
            .collect()
    }

    /// Latencies in a narrow band below a round number (all p99s under 1 ms, say) once gave
    /// ticks 0.7, 0.8, 0.9, 1.0 and 1.0 again, printed over each other.
    #[test]
    fn log_axes_label_distinct_ticks_that_do_not_touch() {
        let bands = [
            (0.2, 1.0),
            (0.5, 0.9),
            (0.09, 0.95),
            (0.3, 3.0),
            (5.0, 40.0),
            (100.0, 900.0),
            (0.001, 900.0),
            (1e-4, 1e6),
        ];
        for (lo, hi) in bands {
            let s = [Series {
                name: "a".into(),
                points: vec![(0.0, lo), (1.0, hi)],
            }];
            let charts = [
                ("timeline", timeline("t", "ms", &s, true, &[]), 3),
                ("percentiles", percentile_curves("t", &s), 2),
            ];
            for (chart, svg, at_least) in charts {
                let ticks = y_ticks(&svg);
                let at = format!("{chart} {lo}..{hi}: {ticks:?}");
                assert!(ticks.len() >= at_least, "{at}");
                let texts: std::collections::BTreeSet<_> = ticks.iter().map(|t| &t.1).collect();
                assert_eq!(texts.len(), ticks.len(), "{at}");
                let mut ys: Vec<f64> = ticks.iter().map(|t| t.0).collect();
                ys.sort_by(f64::total_cmp);
                for pair in ys.windows(2) {
                    assert!(pair[1] - pair[0] >= 16.0, "{at}");
                }
            }
        }
    }

    #[test]
    fn short_numbers_keep_small_ticks_apart() {
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(0.004), "0.004");
        assert_eq!(short_number(0.0002), "2e-4");
        assert_eq!(short_number(1500.0), "1.5k");
    }
}
