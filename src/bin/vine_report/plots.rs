//! The plots, drawn with plotters' SVG backend. Each function returns a whole
//! `<svg>` document; the page inlines it.
//!
//! Counting the attempts on the timeline: every attempt that ran is drawn as
//! exactly one filled `<rect>` whose fill opacity is [`ATTEMPT_ALPHA`]
//! (`opacity="0.875"` in the SVG), and nothing else in the timeline is drawn
//! with that opacity: the background and the legend swatches are opaque
//! (`opacity="1"`), grid and axes are `<line>`/`<polyline>` elements, and the
//! marks of failed attempts and the worker separators are `<polyline>`s. So the
//! number of `<rect` elements with `opacity="0.875"` and a fill other than
//! `none` inside `<svg id="timeline">` is the number of attempts that ran.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::model::Model;

/// The fill opacity of attempt rectangles, and of nothing else in the timeline.
/// A power-of-two fraction, so it prints as exactly `0.875`.
pub const ATTEMPT_ALPHA: f64 = 0.875;

/// Category colours, in order of first appearance (cycled past the end). No
/// red: red marks failures.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0xED, 0xC9, 0x48),
    RGBColor(0xFF, 0x9D, 0xA7),
    RGBColor(0x9C, 0x75, 0x5F),
    RGBColor(0xBA, 0xB0, 0xAC),
    RGBColor(0x8C, 0xD1, 0x7D),
];

const FAIL: RGBColor = RGBColor(0xD6, 0x27, 0x28);
const RUNNING: RGBColor = RGBColor(0x4E, 0x79, 0xA7);
const WAITING: RGBColor = RGBColor(0xF2, 0x8E, 0x2B);
const SEPARATOR: RGBColor = RGBColor(0xC8, 0xC8, 0xC8);
const TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);

const WIDTH: u32 = 1300;
const LEGEND_WIDTH: u32 = 230;
const FONT: &str = "sans-serif";

type Res = Result<(), String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("drawing a plot: {e}")
}

/// At most `max` characters of `s`, with an ellipsis when cut, and the
/// characters XML (and so a standalone SVG) does not allow, even escaped,
/// replaced: control characters, U+FFFE and U+FFFF.
pub fn shorten(s: &str, max: usize) -> String {
    let clean = |c: char| {
        if c.is_control() || matches!(c, '\u{FFFE}' | '\u{FFFF}') {
            '\u{FFFD}'
        } else {
            c
        }
    };
    if s.chars().count() <= max {
        s.chars().map(clean).collect()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).map(clean).collect();
        out.push('…');
        out
    }
}

/// Decimals that tell apart the ticks of an axis spanning `span` seconds.
fn decimals(span: f64) -> usize {
    if span < 0.001 {
        6
    } else if span < 0.01 {
        5
    } else if span < 0.1 {
        4
    } else if span < 1.0 {
        3
    } else if span < 10.0 {
        2
    } else if span < 100.0 {
        1
    } else {
        0
    }
}

fn render(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Res,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// The width left of every plot for labels: the timeline's worker names decide
/// it, and the other plots share it so their time axes line up.
fn y_area(m: &Model) -> u32 {
    let longest = m
        .lanes
        .iter()
        .map(|l| l.worker.chars().count())
        .max()
        .unwrap_or(6);
    (longest.min(24) as u32 * 8 + 24).max(70)
}

/// Task attempts per worker lane over time, coloured by category.
pub fn timeline(m: &Model) -> Result<String, String> {
    let lanes = m.total_lanes.max(1);
    let lane_px: u32 = match lanes {
        0..=8 => 34,
        9..=30 => 22,
        31..=120 => 10,
        _ => 3,
    };
    // Past 4000 px the lanes get thinner than a pixel: the bars are all still
    // there (and counted), drawn as thin as the picture allows.
    let plot_px = (lanes.min(1 << 20) as u32 * lane_px).min(4000);
    let legend_rows = m.categories.len().min(40) as u32 + 3;
    let height = plot_px.max(legend_rows * 20) + 80;
    // The failure mark's line: thinner on thin lanes, where 2 px hides the bar.
    let mark_px = if plot_px / lanes as u32 >= 8 { 2 } else { 1 };
    let x_dec = decimals(m.x_max - m.x_min);

    render((WIDTH, height), |root| {
        let (plot, legend) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&plot)
            .margin(10)
            .margin_bottom(5)
            .x_label_area_size(45)
            .y_label_area_size(y_area(m))
            .build_cartesian_2d(m.x_min..m.x_max, -0.5..(lanes as f64 - 0.5))
            .map_err(err)?;
        let x_fmt = |x: &f64| format!("{x:.x_dec$}");
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_label_formatter(&x_fmt)
            .x_labels(12)
            .x_desc("seconds since manager start")
            .y_desc("worker")
            .max_light_lines(4)
            .label_style((FONT, 15).into_font().color(&TEXT))
            .axis_desc_style((FONT, 16).into_font().color(&TEXT))
            .light_line_style(RGBColor(0xF0, 0xF0, 0xF0))
            .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
            .draw()
            .map_err(err)?;

        // Lane `g` (0 = top) spans y from top(g) down to top(g) - 1.
        let top = |g: usize| (lanes - g) as f64 - 0.5;

        // Each worker's name, left of the middle of its block of lanes, unless
        // it would touch the name above (many thin blocks).
        let name_style = (FONT, 15)
            .into_font()
            .color(&TEXT)
            .pos(Pos::new(HPos::Right, VPos::Center));
        let mut last_y: Option<i32> = None;
        for l in &m.lanes {
            let middle = top(l.first) - l.count as f64 / 2.0;
            let (x, y) = chart.backend_coord(&(m.x_min, middle));
            if last_y.is_none_or(|p| y >= p + 16) {
                root.draw(&Text::new(
                    shorten(&l.worker, 24),
                    (x - 8, y),
                    name_style.clone(),
                ))
                .map_err(err)?;
                last_y = Some(y);
            }
        }

        // Separators between workers' blocks of lanes.
        chart
            .draw_series(m.lanes.iter().skip(1).map(|l| {
                PathElement::new(
                    vec![(m.x_min, top(l.first)), (m.x_max, top(l.first))],
                    SEPARATOR,
                )
            }))
            .map_err(err)?;

        // One filled rectangle per attempt. A bar thinner than 1/500 of the
        // axis is widened to that, so it stays visible; a wider one ends that
        // much early, so back-to-back attempts in a lane show as two bars.
        let min_w = (m.x_max - m.x_min) / 500.0;
        let bar_box = |b: &super::model::Bar| {
            let y0 = top(b.lane) - 0.12;
            let y1 = top(b.lane) - 0.88;
            let x1 = if b.end_s - b.start_s > 3.0 * min_w {
                b.end_s - min_w
            } else {
                b.end_s.max(b.start_s + min_w)
            };
            (b.start_s, y0, x1, y1)
        };
        chart
            .draw_series(m.bars.iter().map(|b| {
                let (x0, y0, x1, y1) = bar_box(b);
                let c = PALETTE[b.category % PALETTE.len()].mix(ATTEMPT_ALPHA);
                Rectangle::new([(x0, y0), (x1, y1)], c.filled())
            }))
            .map_err(err)?;
        // Failed or lost attempts: a red outline, drawn as a path.
        chart
            .draw_series(m.bars.iter().filter(|b| b.failed).map(|b| {
                let (x0, y0, x1, y1) = bar_box(b);
                PathElement::new(
                    vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)],
                    FAIL.stroke_width(mark_px),
                )
            }))
            .map_err(err)?;

        draw_legend(&legend, m)
    })
}

/// The category legend, in the panel right of the timeline: opaque swatches
/// (so they never count as attempts) and the failure mark.
fn draw_legend(area: &DrawingArea<SVGBackend, Shift>, m: &Model) -> Res {
    let title = (FONT, 17).into_font().style(FontStyle::Bold).color(&TEXT);
    let label = (FONT, 15).into_font().color(&TEXT);
    let mut y = 14;
    area.draw(&Text::new("category", (12, y), title))
        .map_err(err)?;
    y += 24;
    const MAX_ROWS: usize = 40;
    for (i, c) in m.categories.iter().enumerate().take(MAX_ROWS) {
        area.draw(&Rectangle::new(
            [(12, y), (28, y + 14)],
            PALETTE[i % PALETTE.len()].filled(),
        ))
        .map_err(err)?;
        let name = if c.is_empty() {
            "(none)".to_string()
        } else {
            shorten(c, 24)
        };
        area.draw(&Text::new(name, (36, y + 1), label.clone()))
            .map_err(err)?;
        y += 20;
    }
    if m.categories.len() > MAX_ROWS {
        let more = format!("… and {} more", m.categories.len() - MAX_ROWS);
        area.draw(&Text::new(more, (36, y + 1), label.clone()))
            .map_err(err)?;
        y += 20;
    }
    y += 6;
    area.draw(&PathElement::new(
        vec![(12, y), (28, y), (28, y + 14), (12, y + 14), (12, y)],
        FAIL.stroke_width(2),
    ))
    .map_err(err)?;
    area.draw(&Text::new("failed or lost", (36, y + 1), label))
        .map_err(err)?;
    Ok(())
}

/// A count over time as a step line.
pub fn step_plot(
    m: &Model,
    points: &[(f64, f64)],
    what: &str,
    waiting: bool,
) -> Result<String, String> {
    let color = if waiting { WAITING } else { RUNNING };
    let y_max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0);
    let x_dec = decimals(m.x_max - m.x_min);
    render((WIDTH, 260), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .margin_right(20 + LEGEND_WIDTH as i32)
            .x_label_area_size(45)
            .y_label_area_size(y_area(m))
            .build_cartesian_2d(m.x_min..m.x_max, 0.0..(y_max * 1.08).ceil())
            .map_err(err)?;
        let x_fmt = |x: &f64| format!("{x:.x_dec$}");
        let y_fmt = |y: &f64| {
            if (y - y.round()).abs() < 1e-9 {
                format!("{y:.0}")
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .x_labels(12)
            .y_labels(6)
            .x_desc("seconds since manager start")
            .y_desc(what)
            .max_light_lines(4)
            .label_style((FONT, 15).into_font().color(&TEXT))
            .axis_desc_style((FONT, 16).into_font().color(&TEXT))
            .light_line_style(RGBColor(0xF0, 0xF0, 0xF0))
            .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?;
        Ok(())
    })
}

/// A value from `x` rounded up to 1, 2 or 5 times a power of ten.
fn nice(x: f64) -> f64 {
    if !x.is_finite() || x <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    let f = x / p;
    let n = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * p
}

/// The bins of a duration histogram: (bin width, count per bin).
pub fn bins(durations: &[f64]) -> (f64, Vec<u32>) {
    let max = durations.iter().copied().fold(0.0, f64::max);
    let width = nice(max / 20.0);
    let n = ((max / width).floor() as usize + 1).clamp(1, 64);
    let mut counts = vec![0u32; n];
    for &d in durations {
        let i = ((d / width).floor().max(0.0) as usize).min(n - 1);
        counts[i] = counts[i].saturating_add(1);
    }
    (width, counts)
}

/// Attempt durations as a histogram.
pub fn histogram(m: &Model) -> Result<String, String> {
    let (width, counts) = bins(&m.durations_s);
    let n = counts.len() as u32;
    let y_max = counts.iter().copied().max().unwrap_or(0).max(1);
    let dec = decimals(width * 10.0);
    render((WIDTH, 320), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .margin_right(20 + LEGEND_WIDTH as i32)
            .x_label_area_size(45)
            .y_label_area_size(y_area(m))
            .build_cartesian_2d(
                (0u32..n - 1).into_segmented(),
                0u32..(y_max + y_max / 10 + 1),
            )
            .map_err(err)?;
        let x_fmt = |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                let lo = f64::from(*i) * width;
                format!("{:.dec$}–{:.dec$}", lo, lo + width)
            }
            SegmentValue::Last => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&x_fmt)
            .x_labels(n as usize)
            .y_labels(6)
            .x_desc("attempt duration (seconds)")
            .y_desc("attempts")
            .label_style((FONT, 14).into_font().color(&TEXT))
            .axis_desc_style((FONT, 16).into_font().color(&TEXT))
            .light_line_style(RGBColor(0xF0, 0xF0, 0xF0))
            .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(RUNNING.filled())
                    .margin(3)
                    .data(counts.iter().enumerate().map(|(i, &c)| (i as u32, c))),
            )
            .map_err(err)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_cuts_and_cleans() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("a\u{1}b", 5), "a\u{FFFD}b");
        assert_eq!(shorten("\u{FFFE}\u{FFFF}", 5), "\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn bins_cover_every_duration() {
        let (w, c) = bins(&[0.0, 0.5, 9.99, 10.0, 1e300]);
        assert!(w > 0.0);
        assert_eq!(c.iter().sum::<u32>(), 5);
        let (_, c) = bins(&[]);
        assert_eq!(c, vec![0]);
    }
}
