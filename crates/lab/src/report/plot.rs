//! Percentile-spectrum plots as inline SVG, written by hand: x is the percentile on a log
//! scale of nines (x = −log10(1 − p), so p90 = 1, p99 = 2, p99.9 = 3, ...), y is RTT on a
//! log scale. Each curve stops at its last finite percentile; the max sits in a column of its
//! own at the right, since 100% has no place on a scale of nines.

use std::fmt::Write as _;

use super::escape::escape;
use super::model::SpectrumPoint;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 74.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 46.0;
const BOTTOM: f64 = 46.0;
/// p50: the plots show the slower half of the samples.
const X_START: f64 = std::f64::consts::LOG10_2;
/// How far right of the last nine the max column sits, and the plot ends, in nines.
const MAX_COLUMN: f64 = 0.55;
const X_END: f64 = 0.8;
/// Fewer and more nines than this are not worth an axis, or not measurable in a lab cell.
const NINES_RANGE: (f64, f64) = (3.0, 6.0);
const FONT: &str = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif\"";

/// One line on a plot.
#[derive(Debug, Clone, Copy)]
pub struct Curve<'a> {
    pub label: &'static str,
    pub colour: &'static str,
    pub dashed: bool,
    pub points: &'a [SpectrumPoint],
    /// Drawn as a dot in the max column.
    pub max_ns: Option<u64>,
}

/// The ranges every plot of a report shares, so plots compare at a glance: nines up to
/// `nines`, RTT from 10^`lo` to 10^`hi` µs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Axes {
    pub nines: u32,
    pub lo: i32,
    pub hi: i32,
}

/// The x position (in nines) of a finite percentile from p50 up; `None` for 100% or below p50.
pub fn nines_of(percentile: f64) -> Option<f64> {
    (50.0..100.0)
        .contains(&percentile)
        .then(|| -(1.0 - percentile / 100.0).log10())
}

/// The points of `points` a plot draws: from p50, below 100%, with a positive RTT.
pub fn plotted(points: &[SpectrumPoint]) -> impl Iterator<Item = (f64, u64)> + '_ {
    points
        .iter()
        .filter(|point| point.ns > 0)
        .filter_map(|point| nines_of(point.percentile).map(|x| (x, point.ns)))
}

impl Axes {
    /// Ranges that fit every curve (and max) of `curves`.
    pub fn fitting<'a>(curves: impl IntoIterator<Item = Curve<'a>> + Clone) -> Axes {
        let xs = curves
            .clone()
            .into_iter()
            .flat_map(|c| plotted(c.points).map(|(x, _)| x));
        let most = xs.fold(NINES_RANGE.0, f64::max);
        let nines = (most - 1e-6).ceil().clamp(NINES_RANGE.0, NINES_RANGE.1) as u32;
        let values = curves
            .into_iter()
            .flat_map(|c| plotted(c.points).map(|(_, ns)| ns).chain(c.max_ns))
            .filter(|&ns| ns > 0)
            .map(|ns| (ns as f64 / 1000.0).log10());
        let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if !low.is_finite() {
            return Axes {
                nines,
                lo: 0,
                hi: 2,
            };
        }
        let (lo, hi) = (low.floor() as i32, high.ceil() as i32);
        Axes {
            nines,
            lo,
            hi: hi.max(lo + 1),
        }
    }

    fn x(&self, nines: f64) -> f64 {
        let span = f64::from(self.nines) + X_END - X_START;
        let clamped = nines.clamp(X_START, f64::from(self.nines));
        LEFT + (clamped - X_START) / span * (WIDTH - LEFT - RIGHT)
    }

    fn max_x(&self) -> f64 {
        let span = f64::from(self.nines) + X_END - X_START;
        LEFT + (f64::from(self.nines) + MAX_COLUMN - X_START) / span * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, ns: u64) -> f64 {
        let decades = (ns.max(1) as f64 / 1000.0).log10();
        let share = (decades - f64::from(self.lo)) / f64::from(self.hi - self.lo);
        HEIGHT - BOTTOM - share.clamp(0.0, 1.0) * (HEIGHT - TOP - BOTTOM)
    }
}

/// One plot: `title`, a legend, the axes and `curves`.
pub fn spectrum_plot(title: &str, curves: &[Curve], axes: &Axes) -> String {
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{label}\" {FONT} \
         font-size=\"12\">\n<title>{label}</title>\n\
         <rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#ffffff\"/>\n\
         <text x=\"{LEFT}\" y=\"18\" font-size=\"15\" font-weight=\"600\" \
         fill=\"#1a1a1a\">{label}</text>\n",
        label = escape(title)
    );
    svg.push_str(&legend(curves));
    svg.push_str(&y_grid(axes));
    svg.push_str(&x_grid(axes));
    svg.push_str(&frame());
    for curve in curves {
        svg.push_str(&curve_svg(curve, axes));
    }
    svg.push_str("</svg>\n");
    svg
}

fn legend(curves: &[Curve]) -> String {
    let mut out = String::new();
    let mut x = LEFT;
    for curve in curves {
        let _ = writeln!(
            out,
            "<line x1=\"{x}\" y1=\"33\" x2=\"{x2}\" y2=\"33\" stroke=\"{colour}\" \
             stroke-width=\"2.5\"{dash}/><text x=\"{tx}\" y=\"37\" fill=\"#333\">{label}</text>",
            x2 = x + 22.0,
            colour = curve.colour,
            dash = dash(curve.dashed),
            tx = x + 27.0,
            label = escape(curve.label),
        );
        // About 6.5 px per character at 12 px.
        x += 27.0 + curve.label.chars().count() as f64 * 6.5 + 18.0;
    }
    out
}

fn dash(dashed: bool) -> &'static str {
    if dashed {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    }
}

fn y_grid(axes: &Axes) -> String {
    let mut out = String::new();
    // At three decades or fewer a decade is tall enough (80+ px) to label its 2 and 5 too.
    let label_minors = axes.hi - axes.lo <= 3;
    for decade in axes.lo..=axes.hi {
        let base = 10f64.powi(decade);
        y_tick(&mut out, axes, base, true, true);
        if decade == axes.hi {
            continue;
        }
        for step in [2.0, 5.0] {
            y_tick(&mut out, axes, base * step, false, label_minors);
        }
    }
    let _ = writeln!(
        out,
        "<text transform=\"translate(16 {mid}) rotate(-90)\" text-anchor=\"middle\" \
         fill=\"#333\">RTT (log scale)</text>",
        mid = (TOP + HEIGHT - BOTTOM) / 2.0
    );
    out
}

fn y_tick(out: &mut String, axes: &Axes, us: f64, major: bool, labelled: bool) {
    let y = axes.y((us * 1000.0).round() as u64);
    let (stroke, ink) = if major {
        ("#d0d0d0", "#333")
    } else {
        ("#ececec", "#777")
    };
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{x2}\" y2=\"{y:.1}\" stroke=\"{stroke}\"/>",
        x2 = WIDTH - RIGHT
    );
    if labelled {
        let _ = writeln!(
            out,
            "<text x=\"{x}\" y=\"{ty:.1}\" text-anchor=\"end\" fill=\"{ink}\">{label}</text>",
            x = LEFT - 6.0,
            ty = y + 4.0,
            label = escape(&latency_label(us)),
        );
    }
}

/// `us` in the unit that keeps the number short: 0.5 µs, 20 µs, 2 ms, 1 s, 1e9 s.
pub fn latency_label(us: f64) -> String {
    let (value, unit) = if us < 1e3 {
        (us, "µs")
    } else if us < 1e6 {
        (us / 1e3, "ms")
    } else {
        (us / 1e6, "s")
    };
    if value >= 1e5 {
        return format!("{value:.0e} {unit}");
    }
    // Rounding to six decimals hides binary fractions such as 0.30000000000000004.
    format!("{} {unit}", (value * 1e6).round() / 1e6)
}

fn x_grid(axes: &Axes) -> String {
    let mut out = String::new();
    let ticks = std::iter::once((X_START, "p50".to_owned()))
        .chain((1..=axes.nines).map(|n| (f64::from(n), nines_label(n))));
    for (nines, label) in ticks {
        x_tick(&mut out, axes.x(nines), &label);
    }
    x_tick(&mut out, axes.max_x(), "max");
    let _ = writeln!(
        out,
        "<text x=\"{mid}\" y=\"{y}\" text-anchor=\"middle\" fill=\"#333\">percentile \
         (log scale of nines)</text>",
        mid = (LEFT + WIDTH - RIGHT) / 2.0,
        y = HEIGHT - 8.0
    );
    out
}

fn x_tick(out: &mut String, x: f64, label: &str) {
    let _ = writeln!(
        out,
        "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{y2}\" stroke=\"#d0d0d0\"/>\
         <text x=\"{x:.1}\" y=\"{ty}\" text-anchor=\"middle\" fill=\"#333\">{label}</text>",
        y2 = HEIGHT - BOTTOM,
        ty = HEIGHT - BOTTOM + 16.0,
        label = escape(label),
    );
}

/// `p90`, `p99`, `p99.9`, ... for 1, 2, 3, ... nines.
fn nines_label(nines: u32) -> String {
    match nines {
        1 => "p90".to_owned(),
        n => format!(
            "p99{}{}",
            if n > 2 { "." } else { "" },
            "9".repeat(n as usize - 2)
        ),
    }
}

fn frame() -> String {
    format!(
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{w}\" height=\"{h}\" fill=\"none\" \
         stroke=\"#888\"/>\n",
        w = WIDTH - LEFT - RIGHT,
        h = HEIGHT - TOP - BOTTOM
    )
}

fn curve_svg(curve: &Curve, axes: &Axes) -> String {
    let coords: Vec<(f64, f64)> = plotted(curve.points)
        .map(|(x, ns)| (axes.x(x), axes.y(ns)))
        .collect();
    let points: Vec<String> = coords
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let mut out = format!(
        "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\" \
         stroke-linejoin=\"round\"{dash} data-series=\"{label}\" points=\"{points}\"/>\n",
        colour = curve.colour,
        dash = dash(curve.dashed),
        label = escape(curve.label),
        points = points.join(" "),
    );
    // A polyline of one point draws nothing.
    if let [only] = coords[..] {
        out.push_str(&dot(only, curve.colour));
    }
    if let Some(max_ns) = curve.max_ns.filter(|&ns| ns > 0) {
        out.push_str(&dot((axes.max_x(), axes.y(max_ns)), curve.colour));
    }
    out
}

fn dot((x, y): (f64, f64), colour: &str) -> String {
    format!("<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{colour}\"/>\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_as_people_write_them() {
        let cases = [
            ("one nine", nines_label(1), "p90"),
            ("two nines", nines_label(2), "p99"),
            ("five nines", nines_label(5), "p99.999"),
            ("sub-µs", latency_label(0.2), "0.2 µs"),
            ("µs", latency_label(50.0), "50 µs"),
            ("ms", latency_label(2000.0), "2 ms"),
            ("s", latency_label(1e7), "10 s"),
            ("huge", latency_label(1e17), "1e11 s"),
        ];
        for (what, got, want) in cases {
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn nines_put_p99_9_at_three() {
        let x = nines_of(99.9).unwrap();
        assert!((x - 3.0).abs() < 1e-9, "{x}");
        assert_eq!(nines_of(100.0), None);
        assert_eq!(nines_of(49.0), None);
    }
}
