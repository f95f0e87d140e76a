//! Line charts as inline SVG, drawn on the server: no script and no charting library, so the
//! console's Content-Security-Policy stays strict and the monthly report can draw the same
//! charts. A chart is a few series of `(timestamp_ms, value)` over a time window; gaps
//! (missing steps, NaN) break the line.

use std::fmt::Write;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
/// Room for the value axis on the left and the time axis below.
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 8.0;
const RIGHT: f64 = 8.0;
/// Line colours, one per series, in order.
const COLOURS: [&str; 6] = [
    "#1f6feb", "#d1242f", "#1a7f37", "#bf8700", "#8250df", "#57606a",
];

/// How values read on the axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A ratio 0..1, shown as a percentage.
    Ratio,
    Bytes,
    Plain,
}

impl Unit {
    pub fn format(self, value: f64) -> String {
        match self {
            Unit::Ratio => format!("{:.0} %", value * 100.0),
            Unit::Bytes => {
                let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
                let mut scaled = value;
                let mut unit = 0;
                while scaled.abs() >= 1024.0 && unit + 1 < units.len() {
                    scaled /= 1024.0;
                    unit += 1;
                }
                if unit == 0 || scaled.abs() >= 100.0 {
                    format!("{scaled:.0} {}", units[unit])
                } else {
                    format!("{scaled:.1} {}", units[unit])
                }
            }
            Unit::Plain => {
                if value.abs() >= 100.0 || value.fract() == 0.0 {
                    format!("{value:.0}")
                } else {
                    format!("{value:.2}")
                }
            }
        }
    }
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub points: Vec<(i64, f64)>,
}

/// What a chart shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    pub unit: Unit,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The top of the value axis when it is known (a ratio's 1, a disk's size); otherwise the
    /// largest value drawn.
    pub max: Option<f64>,
    pub lines: Vec<Line>,
}

impl Chart {
    /// Points drawn, NaN and out-of-window ones left out.
    pub fn points(&self) -> usize {
        self.lines
            .iter()
            .flat_map(|line| &line.points)
            .filter(|(at, value)| value.is_finite() && self.contains(*at))
            .count()
    }

    fn contains(&self, at_ms: i64) -> bool {
        (self.start_ms..=self.end_ms).contains(&at_ms)
    }

    /// The chart as an `<svg>` element, to be placed in an HTML page as it is.
    pub fn to_svg(&self) -> String {
        let plot_width = WIDTH - LEFT - RIGHT;
        let plot_height = HEIGHT - TOP - BOTTOM;
        let span = (self.end_ms - self.start_ms).max(1) as f64;
        let largest = self
            .lines
            .iter()
            .flat_map(|line| &line.points)
            .filter(|(at, value)| value.is_finite() && self.contains(*at))
            .map(|(_, value)| *value)
            .fold(0.0_f64, f64::max);
        let top = match self.max {
            Some(max) if max > 0.0 => max.max(largest),
            _ if largest > 0.0 => largest * 1.1,
            _ => 1.0,
        };
        let x = |at: i64| LEFT + (at - self.start_ms) as f64 / span * plot_width;
        let y = |value: f64| TOP + plot_height - (value / top).clamp(0.0, 1.0) * plot_height;

        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{}" data-points="{}">"#,
            escape(&self.title),
            self.points()
        );
        let _ = write!(svg, "<title>{}</title>", escape(&self.title));
        // Grid: the top, the middle and zero, labelled.
        for fraction in [0.0, 0.5, 1.0] {
            let at = TOP + plot_height * (1.0 - fraction);
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" x2="{}" y1="{at:.1}" y2="{at:.1}" stroke="#d8dde3" stroke-width="1"/><text x="{}" y="{:.1}" text-anchor="end" font-size="10" fill="#5a6570">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 4.0,
                at + 3.0,
                escape(&self.unit.format(top * fraction))
            );
        }
        let _ = write!(
            svg,
            r##"<text x="{LEFT}" y="{}" font-size="10" fill="#5a6570">{}</text><text x="{}" y="{}" text-anchor="end" font-size="10" fill="#5a6570">now</text>"##,
            HEIGHT - 5.0,
            escape(&ago_label(self.end_ms - self.start_ms)),
            WIDTH - RIGHT,
            HEIGHT - 5.0
        );
        if self.points() == 0 {
            let _ = write!(
                svg,
                r##"<text class="no-data" x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12" fill="#5a6570">no data in this window</text>"##,
                LEFT + plot_width / 2.0,
                TOP + plot_height / 2.0
            );
        }
        for (index, line) in self.lines.iter().enumerate() {
            let colour = COLOURS[index % COLOURS.len()];
            // Runs of neighbouring points; a gap or a NaN starts a new run.
            let gap_ms = typical_step(&line.points).saturating_mul(3);
            let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
            let mut previous: Option<i64> = None;
            for &(at, value) in &line.points {
                if !value.is_finite() || !self.contains(at) {
                    previous = None;
                    continue;
                }
                let joined = previous.is_some_and(|before| at - before <= gap_ms);
                match runs.last_mut() {
                    Some(run) if joined => run.push((x(at), y(value))),
                    _ => runs.push(vec![(x(at), y(value))]),
                }
                previous = Some(at);
            }
            let mut path = String::new();
            for run in runs.iter().filter(|run| run.len() > 1) {
                for (index, (px, py)) in run.iter().enumerate() {
                    let command = if index == 0 { 'M' } else { 'L' };
                    let _ = write!(path, "{command}{px:.1},{py:.1} ");
                }
            }
            if !path.is_empty() {
                let _ = write!(
                    svg,
                    r#"<path class="series" data-series="{}" d="{}" fill="none" stroke="{colour}" stroke-width="1.5"/>"#,
                    escape(&line.name),
                    path.trim_end()
                );
            }
            // A point with no neighbour would draw nothing as a path: a dot instead.
            for run in runs.iter().filter(|run| run.len() == 1) {
                let (cx, cy) = run[0];
                let _ = write!(
                    svg,
                    r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="2" fill="{colour}"/>"#
                );
            }
        }
        svg.push_str("</svg>");
        svg
    }
}

/// The most common distance between neighbouring points (at least a second).
fn typical_step(points: &[(i64, f64)]) -> i64 {
    let mut steps: Vec<i64> = points
        .windows(2)
        .map(|pair| pair[1].0 - pair[0].0)
        .filter(|step| *step > 0)
        .collect();
    steps.sort_unstable();
    steps
        .get(steps.len() / 2)
        .copied()
        .unwrap_or(1000)
        .max(1000)
}

fn ago_label(span_ms: i64) -> String {
    let hours = span_ms / 3_600_000;
    if hours >= 48 {
        format!("{} d ago", hours / 24)
    } else if hours >= 1 {
        format!("{hours} h ago")
    } else {
        format!("{} min ago", span_ms / 60_000)
    }
}

/// Up/down strips, one row per service: green where it ran, red where it was down at any
/// moment of a cell, grey without data.
pub fn service_strips(
    services: &[(String, Vec<(i64, f64)>)],
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
) -> String {
    const ROW: f64 = 18.0;
    if services.is_empty() {
        return r#"<p class="none" id="no-services">No watched services reported.</p>"#.into();
    }
    let height = ROW * services.len() as f64 + 4.0;
    let span = (end_ms - start_ms).max(1) as f64;
    let cell = (WIDTH - LEFT - RIGHT) * step_ms as f64 / span;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart services" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="Services">"#
    );
    for (row, (service, points)) in services.iter().enumerate() {
        let y = ROW * row as f64 + 2.0;
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11" fill="#24292f">{}</text><rect x="{LEFT}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="#d0d7de"/>"##,
            LEFT - 4.0,
            y + ROW * 0.7,
            escape(service),
            WIDTH - LEFT - RIGHT,
            ROW - 4.0,
        );
        for (at_ms, value) in points {
            if !value.is_finite() || *at_ms < start_ms || *at_ms >= end_ms {
                continue;
            }
            let (colour, state) = if *value >= 1.0 {
                ("#1a7f37", "up")
            } else {
                ("#d1242f", "down")
            };
            let x = LEFT + (at_ms - start_ms) as f64 / span * (WIDTH - LEFT - RIGHT);
            let _ = write!(
                svg,
                r#"<rect class="{state}" data-service="{}" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{colour}"/>"#,
                escape(service),
                cell.max(1.0),
                ROW - 4.0,
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Text for HTML and SVG, attributes included.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(points: Vec<(i64, f64)>) -> Chart {
        Chart {
            title: "CPU <all>".into(),
            unit: Unit::Ratio,
            start_ms: 0,
            end_ms: 10_000,
            max: Some(1.0),
            lines: vec![Line {
                name: "cpu".into(),
                points,
            }],
        }
    }

    fn path_of(svg: &str) -> &str {
        let start = svg.find(" d=\"").expect("a path") + 4;
        &svg[start..start + svg[start..].find('"').unwrap()]
    }

    #[test]
    fn a_series_becomes_one_path_through_every_point_scaled_to_the_window() {
        let svg = chart(vec![(0, 0.0), (5_000, 0.5), (10_000, 1.0)]).to_svg();
        let path = path_of(&svg);
        assert_eq!(path.matches('M').count(), 1, "{path}");
        assert_eq!(path.matches('L').count(), 2, "{path}");
        // Zero at the bottom left, one at the top right.
        assert!(path.starts_with(&format!("M{LEFT:.1},{:.1}", HEIGHT - BOTTOM)));
        assert!(path.ends_with(&format!("{:.1},{TOP:.1}", WIDTH - RIGHT)));
        assert!(svg.contains(r#"data-points="3""#));
        assert!(!svg.contains("no data"));
    }

    #[test]
    fn gaps_and_nan_break_the_line_and_an_empty_window_says_so() {
        let svg = chart(vec![
            (0, 0.1),
            (1_000, 0.2),
            (6_000, 0.3),
            (7_000, 0.3),
            (8_000, f64::NAN),
            (9_000, 0.4),
        ])
        .to_svg();
        assert_eq!(path_of(&svg).matches('M').count(), 2, "{svg}");
        assert_eq!(path_of(&svg).matches('L').count(), 2, "{svg}");
        // The lone point after the NaN is a dot.
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        assert!(svg.contains(r#"data-points="5""#));
        let empty = chart(vec![(20_000, 0.5)]).to_svg();
        assert!(empty.contains("no data in this window"));
        assert!(!empty.contains("<path"));
    }

    #[test]
    fn titles_and_names_are_escaped() {
        let svg = chart(vec![(0, 0.5)]).to_svg();
        assert!(svg.contains("CPU &lt;all&gt;"));
        assert!(!svg.contains("<all>"));
        assert_eq!(escape(r#"a"b'c&"#), "a&quot;b&#39;c&amp;");
    }

    #[test]
    fn units_read_as_a_person_would_say_them() {
        assert_eq!(Unit::Ratio.format(0.423), "42 %");
        assert_eq!(Unit::Bytes.format(1536.0), "1.5 KiB");
        assert_eq!(
            Unit::Bytes.format(8.0 * 1024.0 * 1024.0 * 1024.0),
            "8.0 GiB"
        );
        assert_eq!(Unit::Plain.format(3.0), "3");
    }
}
