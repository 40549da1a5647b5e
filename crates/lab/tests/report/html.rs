//! The HTML page: self-contained, one SVG per plot, every curve with its points, text escaped.

use nearnative_lab::report::{html, write_html, write_json, Condition, Config, LabReport};
use nearnative_lab::Layer;

use super::sample::{cell, empty_report, full_report, report_of};

/// The (series, number of points) of every polyline, in page order.
fn polylines(page: &str) -> Vec<(String, usize)> {
    page.split("<polyline")
        .skip(1)
        .map(|tag| {
            let attr = |name: &str| {
                let start = tag.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                tag[start..][..tag[start..].find('"').unwrap()].to_owned()
            };
            let points = attr("points");
            (attr("data-series"), points.split_whitespace().count())
        })
        .collect()
}

/// What the plots should draw, in page order: per path and condition, default, then
/// latency-sensitive, then the native reference except on native's own plot.
fn expected_curves(report: &LabReport) -> Vec<(String, usize)> {
    let plotted = |config| {
        let row = report
            .row(Layer::Loopback, Condition::Quiet, config)
            .unwrap();
        drawn(&row.spectrum)
    };
    let native = plotted(Config::LatencySensitive);
    let mut curves = Vec::new();
    for path in Layer::ALL {
        for condition in Condition::ALL {
            for config in Config::ALL {
                let row = report.row(path, condition, config).unwrap();
                curves.push((config_name(config), drawn(&row.spectrum)));
            }
            if (path, condition) != (Layer::Loopback, Condition::Quiet) {
                curves.push(("native".to_owned(), native));
            }
        }
    }
    curves
}

fn config_name(config: Config) -> String {
    config.name().to_owned()
}

fn drawn(spectrum: &[nearnative_lab::report::SpectrumPoint]) -> usize {
    spectrum
        .iter()
        .filter(|p| (50.0..100.0).contains(&p.percentile) && p.ns > 0)
        .count()
}

#[test]
fn one_svg_per_path_and_condition() {
    let page = html(&full_report());
    assert_eq!(page.matches("<svg").count(), 8);
    assert_eq!(page.matches("</svg>").count(), 8);
    for title in ["loopback · quiet", "veth · noisy", "tap · noisy"] {
        assert!(page.contains(&format!("<title>{title}</title>")), "{title}");
    }
}

#[test]
fn every_curve_has_all_its_points() {
    let report = full_report();
    let drawn = polylines(&html(&report));
    assert_eq!(drawn, expected_curves(&report));
    assert!(drawn.iter().all(|(_, points)| *points > 20), "{drawn:?}");
}

#[test]
fn page_fetches_nothing() {
    let page = html(&full_report());
    let without_xmlns = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!without_xmlns.contains("http"));
    for external in [
        "<script",
        "<link",
        "<img",
        "src=",
        "url(",
        "@import",
        "@font-face",
    ] {
        assert!(!page.contains(external), "{external}");
    }
}

#[test]
fn tags_balance() {
    let page = html(&full_report());
    for (open, close) in [
        ("<html", "</html>"),
        ("<table", "</table>"),
        ("<tr", "</tr>"),
        ("<svg", "</svg>"),
        ("<text", "</text>"),
        ("<dl", "</dl>"),
        ("<ul", "</ul>"),
    ] {
        assert_eq!(
            page.matches(open).count(),
            page.matches(close).count(),
            "{open}"
        );
    }
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_coordinates_finite(&page);
}

/// Every coordinate attribute and polyline point of `page` is a finite number.
pub fn assert_coordinates_finite(page: &str) {
    let mut seen = 0;
    for name in ["x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "points"] {
        for value in page.split(&format!(" {name}=\"")).skip(1) {
            let value = &value[..value.find('"').unwrap()];
            for number in value.split([' ', ',']).filter(|n| !n.is_empty()) {
                let parsed: f64 = number.parse().unwrap_or(f64::NAN);
                assert!(parsed.is_finite(), "{name}=\"{value}\"");
                seen += 1;
            }
        }
    }
    assert!(seen > 0 || !page.contains("<svg"), "no coordinates found");
}

#[test]
fn report_text_is_escaped() {
    let mut report = report_of(vec![cell(
        Layer::Veth,
        Condition::Noisy,
        Config::Default,
        1,
        2,
    )]);
    report.notes.push("<script>alert('x')</script>".to_owned());
    report.placement = "CPU 1 \"exclusive\" & <b>".to_owned();
    report.host.cpu_model = "Evil <img src=x>".to_owned();
    let page = html(&report);
    assert!(!page.contains("<script") && !page.contains("<img") && !page.contains("<b>"));
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(page.contains("CPU 1 &quot;exclusive&quot; &amp; &lt;b&gt;"));
}

#[test]
fn baseline_row_is_highlighted_and_verdict_shown() {
    let page = html(&full_report());
    assert_eq!(page.matches("<tr class=\"native\">").count(), 1);
    let native_row = page.split("<tr class=\"native\">").nth(1).unwrap();
    assert!(native_row.starts_with("<td class=\"label\">loopback</td><td class=\"label\">quiet</td><td class=\"label\">latency-sensitive</td>"));
    assert!(page.contains("<strong>Verdict:</strong> under noise, tap: latency-sensitive p50"));
}

#[test]
fn files_are_written_where_asked() {
    let dir = tempfile::tempdir().unwrap();
    let report = full_report();
    let (json, page) = (dir.path().join("lab.json"), dir.path().join("lab.html"));
    write_json(&report, &json).unwrap();
    write_html(&report, &page).unwrap();
    let back: LabReport = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(back, report);
    assert_eq!(std::fs::read_to_string(&page).unwrap(), html(&report));
    let missing = dir.path().join("no/such/dir/lab.html");
    let err = write_html(&empty_report(), &missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no/such/dir/lab.html"), "{err}");
}
