//! The report as one self-contained HTML page: inline CSS (screen and print, A4 or Letter,
//! whichever paper the printer has), inline SVG charts, no script, no font, no image or
//! link fetched from anywhere. Plain words first; the method behind each figure is on the
//! page, next to it.

use super::figures::{HostAvailability, AVOIDED_PER_FAILURE_MS};
use super::i18n::Language;
use super::MonthReport;
use crate::policy::ContractSeverity;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::fmt::Write;

const STYLE: &str = r#"
:root { --ink:#1d2733; --muted:#5b6673; --line:#d9dee4; --good:#2f8f5b; --bad:#c0392b; --warn:#d68910; --hold:#8e99a6; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color: var(--ink); margin: 0 auto; max-width: 180mm; padding: 12mm 6mm; }
h1 { font-size: 22px; margin: 0 0 2px; }
h2 { font-size: 17px; margin: 26px 0 8px; padding-bottom: 3px; border-bottom: 2px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 14px; }
.summary { font-size: 15.5px; background: #f3f6f9; border-left: 4px solid var(--good); padding: 10px 14px; }
.figures { display: flex; flex-wrap: wrap; gap: 8px; margin: 12px 0; }
.figure { flex: 1 1 120px; border: 1px solid var(--line); border-radius: 4px; padding: 8px 10px; }
.figure b { display: block; font-size: 20px; }
.figure span { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-size: 13px; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td:first-child { white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.met { color: var(--good); } .missed { color: var(--bad); font-weight: 600; }
.method { color: var(--muted); font-size: 12px; }
ul { padding-left: 20px; } li { margin: 3px 0; }
.risk-os, .risk-disk, .risk-smart, .risk-backup, .risk-restart { }
svg { display: block; width: 100%; height: auto; }
footer { margin-top: 28px; color: var(--muted); font-size: 11px; border-top: 1px solid var(--line); padding-top: 6px; }
@page { size: auto; margin: 14mm 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  h2 { break-after: avoid; }
  section, table, svg, .figures { break-inside: avoid; }
  .summary { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

/// The Content-Security-Policy under which a served page renders whole and can do nothing
/// else: its one inline style allowed by hash, no script, nothing fetched, no framing.
pub fn content_security_policy() -> String {
    use base64::Engine as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, STYLE.as_bytes());
    format!(
        "default-src 'none'; style-src 'sha256-{}'; img-src data:; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "2 h 10 min", "45 min", "0 min" (in English, for the command line's summary).
pub fn duration(ms: i64) -> String {
    Language::En.duration(ms)
}

/// "99.62 %" (in English, for the command line's summary).
pub fn percent(share: f64) -> String {
    Language::En.percent(share)
}

fn money(report: &MonthReport, amount: f64) -> String {
    report.language.money(report.currency.as_deref(), amount)
}

fn zone(report: &MonthReport) -> TimeZone {
    TimeZone::get(&report.time_zone).unwrap_or(TimeZone::UTC)
}

/// The instant `ms` in the client's zone.
fn zoned(report: &MonthReport, ms: i64) -> Option<jiff::ZonedDateTime> {
    Timestamp::from_millisecond(ms)
        .ok()
        .map(|at| at.to_zoned_datetime(zone(report)))
}

/// The day of `ms` in the client's zone, as the language writes dates.
fn local_date(report: &MonthReport, ms: i64) -> String {
    zoned(report, ms).map_or(String::new(), |at| report.language.date(at.date()))
}

/// The day and time of `ms` in the client's zone: "2026-11-21 23:00".
fn local_date_time(report: &MonthReport, ms: i64) -> String {
    zoned(report, ms).map_or(String::new(), |at| {
        format!(
            "{} {}",
            report.language.date(at.date()),
            at.strftime("%H:%M")
        )
    })
}

/// Weekday, day, month and time of `ms` in the client's zone: "Sat 21 Nov 23:00".
fn local_weekday_time(report: &MonthReport, ms: i64) -> String {
    zoned(report, ms).map_or(String::new(), |at| {
        format!(
            "{} {} {}",
            report.language.weekday_short(at.weekday()),
            report.language.day_month(at.date()),
            at.strftime("%H:%M")
        )
    })
}

/// "the 14th", in the client's zone; with the month when it is not the report's month.
fn day_of(report: &MonthReport, ms: i64) -> String {
    let Some(at) = zoned(report, ms) else {
        return String::new();
    };
    let date = at.date();
    let same_month = date.year() == report.month.year && date.month() == report.month.month;
    report.language.day_of_month(date, same_month)
}

/// One sentence for a failure the forecast saw coming.
pub fn foreseen_sentence(report: &MonthReport, item: &super::figures::Foreseen) -> String {
    let t = report.language;
    let predicted = day_of(report, item.predicted_failure_ms);
    let resolved = day_of(report, item.resolved_ms);
    let mountpoint = item.labels.get("mountpoint").cloned().unwrap_or_default();
    let values = [
        ("host", item.host.as_str()),
        ("rule", item.rule.as_str()),
        ("mountpoint", mountpoint.as_str()),
        ("predicted", predicted.as_str()),
        ("resolved", resolved.as_str()),
    ];
    match item.kind.as_deref() {
        Some("disk_full") => t.text("foreseen.disk", &values),
        Some("memory_exhaustion") => t.text("foreseen.memory", &values),
        _ => t.text("foreseen.other", &values),
    }
}

/// The ten-second paragraph.
pub fn summary(report: &MonthReport) -> String {
    let t = report.language;
    let hosts = report.hosts.len();
    let month = t.month_title(report.month);
    let availability = t.percent(report.availability);
    let count = hosts.to_string();
    let values = [
        ("month", month.as_str()),
        ("hosts", count.as_str()),
        ("client", report.client_name.as_str()),
        ("availability", availability.as_str()),
    ];
    let mut text = if hosts == 1 {
        t.text("summary.watched_one", &values)
    } else {
        t.text("summary.watched", &values)
    };
    if report.downtime_ms == 0 {
        text.push_str(&t.text("summary.no_downtime", &[]));
    } else {
        text.push_str(&t.text(
            "summary.downtime",
            &[
                ("downtime", &t.duration(report.downtime_ms)),
                ("business", &t.duration(report.downtime_business_ms)),
            ],
        ));
        match report.downtime_cost {
            Some(cost) if report.costly_downtime_ms > 0 => {
                text.push_str(&t.text("summary.cost", &[("cost", &money(report, cost))]));
            }
            _ => text.push_str(&t.text("summary.end", &[])),
        }
    }
    let mut sentences = Vec::new();
    match report.foreseen.len() {
        0 => {}
        1 => sentences.push(t.text("summary.foreseen_one", &[])),
        n => sentences.push(t.text("summary.foreseen_many", &[("count", &n.to_string())])),
    }
    let (met, counted): (usize, usize) =
        report.responses.iter().fold((0, 0), |(met, counted), row| {
            (met + row.met, counted + row.met + row.missed)
        });
    if counted > 0 {
        sentences.push(t.text(
            "summary.responses",
            &[("met", &met.to_string()), ("counted", &counted.to_string())],
        ));
    }
    match report.risks.len() {
        0 => {}
        1 => sentences.push(t.text("summary.risks_one", &[])),
        n => sentences.push(t.text("summary.risks_many", &[("count", &n.to_string())])),
    }
    for sentence in sentences {
        text.push(' ');
        text.push_str(&sentence);
    }
    text
}

/// A table's header row from catalog keys; a key after `#` heads a column of numbers.
fn header_row(report: &MonthReport, keys: &[&'static str]) -> String {
    let mut row = String::from("<tr>");
    for key in keys {
        match key.strip_prefix('#') {
            Some(key) => {
                let _ = write!(
                    row,
                    "<th class=\"num\">{}</th>",
                    report.language.html(key, &[])
                );
            }
            None => {
                let _ = write!(row, "<th>{}</th>", report.language.html(key, &[]));
            }
        }
    }
    row.push_str("</tr>\n");
    row
}

/// The whole page.
pub fn render(report: &MonthReport) -> String {
    let t = report.language;
    let mut page = String::with_capacity(32 * 1024);
    let title = t.html(
        "title",
        &[
            ("client", &escape(&report.client_name)),
            ("month", &escape(&t.month_title(report.month))),
        ],
    );
    let sub = t.html(
        "sub",
        &[
            ("from", &local_date(report, report.start_ms)),
            ("to", &local_date(report, report.end_ms - 1)),
            ("zone", &escape(&report.time_zone)),
            ("version", &report.policy_version.to_string()),
        ],
    );
    let _ = writeln!(
        page,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header><h1>{title}</h1>\n<p class=\"sub\">{sub}</p></header>",
        t.code()
    );
    let _ = writeln!(
        page,
        "<p class=\"summary\">{}</p>",
        escape(&summary(report))
    );
    figures_row(&mut page, report);
    availability(&mut page, report);
    downtime(&mut page, report);
    foreseen(&mut page, report);
    responses(&mut page, report);
    risks(&mut page, report);
    trends(&mut page, report);
    inventory(&mut page, report);
    let instant = |ms: i64| {
        Timestamp::from_millisecond(ms)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let mut footer = t.html(
        "footer",
        &[
            ("version", &report.policy_version.to_string()),
            ("digest", &escape(&report.policy_digest)),
            ("from", &instant(report.start_ms)),
            ("to", &instant(report.end_ms)),
        ],
    );
    if report.unreadable_history_lines > 0 {
        footer.push(' ');
        footer.push_str(&t.html(
            "footer.unreadable",
            &[("count", &report.unreadable_history_lines.to_string())],
        ));
    }
    if report.store_note.is_some() {
        footer.push(' ');
        footer.push_str(&t.html("footer.store", &[]));
    }
    let _ = writeln!(page, "<footer>{footer}</footer>\n</body>\n</html>");
    page
}

fn figures_row(page: &mut String, report: &MonthReport) {
    let t = report.language;
    let cost = report
        .downtime_cost
        .map_or(t.text("figure.no_cost", &[]), |cost| money(report, cost));
    let alerts: usize = report.episodes.len();
    let _ = writeln!(
        page,
        "<div class=\"figures\">\
         <div class=\"figure\"><b>{}</b><span>{}</span></div>\
         <div class=\"figure\"><b>{}</b><span>{}</span></div>\
         <div class=\"figure\"><b>{}</b><span>{}</span></div>\
         <div class=\"figure\"><b>{}</b><span>{}</span></div>\
         <div class=\"figure\"><b>{alerts}</b><span>{}</span></div></div>",
        t.percent(report.availability),
        t.html("figure.availability", &[]),
        t.duration(report.downtime_business_ms),
        t.html("figure.downtime_business", &[]),
        escape(&cost),
        t.html("figure.cost", &[]),
        report.foreseen.len(),
        t.html("figure.foreseen", &[]),
        t.html("figure.alerts", &[]),
    );
}

fn availability(page: &mut String, report: &MonthReport) {
    let t = report.language;
    let _ = writeln!(page, "<section><h2>{}</h2>", t.html("h.availability", &[]));
    page.push_str(&timeline(report));
    page.push_str("<table>");
    page.push_str(&header_row(
        report,
        &[
            "th.host",
            "th.role",
            "#th.available",
            "#th.downtime",
            "#th.in_business_hours",
            "#th.maintenance",
        ],
    ));
    let no_role = t.text("role.none", &[]);
    for host in &report.hosts {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&host.host),
            escape(host.role.as_deref().unwrap_or("—")),
            t.percent(host.availability()),
            t.duration(host.downtime_ms),
            t.duration(host.downtime_business_ms),
            t.duration(host.maintenance_ms)
        );
    }
    page.push_str("</table>\n<table>");
    page.push_str(&header_row(
        report,
        &["th.role", "#th.hosts", "#th.available"],
    ));
    for (role, share, count) in &report.roles {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"num\">{count}</td><td class=\"num\">{}</td></tr>",
            escape(role.as_deref().unwrap_or(&no_role)),
            t.percent(*share)
        );
    }
    let _ = writeln!(
        page,
        "</table>\n<p class=\"method\">{}</p></section>",
        t.html("method.availability", &[])
    );
}

/// One row per host across the month: green up, red down, grey maintenance.
fn timeline(report: &MonthReport) -> String {
    let t = report.language;
    let width = 700.0;
    let label_width = 130.0;
    let row = 18.0;
    let span = (report.end_ms - report.start_ms).max(1) as f64;
    let x = |ms: i64| label_width + (width - label_width) * (ms - report.start_ms) as f64 / span;
    let height = 24.0 + row * report.hosts.len() as f64;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{}\" \
         xmlns=\"http://www.w3.org/2000/svg\">\n",
        t.html("chart.label", &[])
    );
    // Day ticks every seventh day, labelled with the local date.
    let mut day = report.start_ms;
    let mut ticks = 0;
    while day < report.end_ms && ticks < 6 {
        let label = zoned(report, day).map_or(String::new(), |at| t.day_month(at.date()));
        let _ = writeln!(
            svg,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"14\" y2=\"{height}\" stroke=\"#d9dee4\"/>\
             <text x=\"{0:.1}\" y=\"10\" font-size=\"9\" fill=\"#5b6673\">{1}</text>",
            x(day),
            escape(&label)
        );
        day += 7 * 86_400_000;
        ticks += 1;
    }
    for (index, host) in report.hosts.iter().enumerate() {
        let y = 16.0 + row * index as f64;
        let _ = writeln!(
            svg,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"10\" fill=\"#1d2733\">{}</text>\
             <rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#2f8f5b\" opacity=\"0.85\"/>",
            y + 11.0,
            escape(&host.host),
            x(start_of(host, report)),
            (x(report.end_ms) - x(start_of(host, report))).max(0.0),
            row - 5.0
        );
        for outage in &host.outages {
            let colour = if outage.counted_ms == 0 {
                "#8e99a6"
            } else {
                "#c0392b"
            };
            let _ = writeln!(
                svg,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{}</title></rect>",
                x(outage.start_ms),
                (x(outage.end_ms) - x(outage.start_ms)).max(1.5),
                row - 5.0,
                t.html(
                    "span",
                    &[
                        ("from", &local_date_time(report, outage.start_ms)),
                        ("to", &local_date_time(report, outage.end_ms)),
                    ]
                )
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn start_of(host: &HostAvailability, report: &MonthReport) -> i64 {
    report.end_ms - host.monitored_ms
}

fn downtime(page: &mut String, report: &MonthReport) {
    let t = report.language;
    let rate = report
        .cost_per_hour
        .map_or(t.text("cost.none_stated", &[]), |per_hour| {
            money(report, per_hour)
        });
    let _ = write!(
        page,
        "<section><h2>{}</h2>\n<table>\
         <tr><td>{}</td><td class=\"num\">{}</td></tr>\
         <tr><td>{}</td><td class=\"num\">{}</td></tr>\
         <tr><td>{}</td><td class=\"num\">{}</td></tr>\
         <tr><td>{}</td><td class=\"num\">{}</td></tr></table>\n\
         <p class=\"method\">{}</p>\n",
        t.html("h.downtime", &[]),
        t.html("row.in_business_hours", &[]),
        t.duration(report.downtime_business_ms),
        t.html("row.outside_business_hours", &[]),
        t.duration(report.downtime_ms - report.downtime_business_ms),
        t.html("row.critical_down", &[]),
        t.duration(report.costly_downtime_ms),
        t.html("row.cost_at", &[("rate", &escape(&rate))]),
        report
            .downtime_cost
            .map_or("—".to_string(), |cost| escape(&money(report, cost))),
        t.html("method.cost", &[]),
    );
    let outages: Vec<_> = report
        .hosts
        .iter()
        .flat_map(|host| host.outages.iter().map(move |outage| (host, outage)))
        .collect();
    if !outages.is_empty() {
        page.push_str("<table>");
        page.push_str(&header_row(
            report,
            &[
                "th.host",
                "th.from",
                "th.to",
                "#th.counted",
                "#th.business_hours",
            ],
        ));
        for (host, outage) in outages {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(&host.host),
                escape(&local_weekday_time(report, outage.start_ms)),
                escape(&local_weekday_time(report, outage.end_ms)),
                t.duration(outage.counted_ms),
                t.duration(outage.business_ms)
            );
        }
        page.push_str("</table>\n");
    }
    page.push_str("</section>\n");
}

fn foreseen(page: &mut String, report: &MonthReport) {
    let t = report.language;
    let _ = writeln!(page, "<section><h2>{}</h2>", t.html("h.foreseen", &[]));
    if report.foreseen.is_empty() {
        let _ = writeln!(page, "<p>{}</p>", t.html("foreseen.none", &[]));
    } else {
        page.push_str("<ul>\n");
        for item in &report.foreseen {
            let _ = writeln!(
                page,
                "<li>{}.</li>",
                escape(&capitalise(&foreseen_sentence(report, item)))
            );
        }
        let duration = format!("<b>{}</b>", t.duration(report.avoided_downtime_ms));
        let avoided = match report.avoided_cost {
            Some(cost) => t.html(
                "foreseen.avoided_cost",
                &[
                    ("duration", &duration),
                    ("cost", &format!("<b>{}</b>", escape(&money(report, cost)))),
                ],
            ),
            None => t.html("foreseen.avoided", &[("duration", &duration)]),
        };
        let _ = writeln!(page, "</ul>\n<p>{avoided}.</p>");
    }
    let _ = writeln!(
        page,
        "<p class=\"method\">{}</p></section>",
        t.html(
            "method.foreseen",
            &[("duration", &t.duration(AVOIDED_PER_FAILURE_MS))]
        )
    );
}

/// A contract severity in the report's language.
fn severity(report: &MonthReport, severity: ContractSeverity) -> String {
    report.language.text(
        match severity {
            ContractSeverity::Emergency => "severity.emergency",
            ContractSeverity::Critical => "severity.critical",
            ContractSeverity::Warning => "severity.warning",
            ContractSeverity::Notice => "severity.notice",
        },
        &[],
    )
}

fn responses(page: &mut String, report: &MonthReport) {
    let t = report.language;
    let _ = write!(
        page,
        "<section><h2>{}</h2>\n<table>",
        t.html("h.responses", &[])
    );
    page.push_str(&header_row(
        report,
        &[
            "th.severity",
            "#th.alerts",
            "th.target",
            "#th.met",
            "#th.missed",
            "#th.median",
            "#th.worst",
        ],
    ));
    for row in &report.responses {
        let missed_class = if row.missed > 0 { "missed" } else { "" };
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num met\">{}</td>\
             <td class=\"num {missed_class}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&severity(report, row.severity)),
            row.alerts,
            escape(&row.target),
            row.met,
            row.missed,
            row.median_ms.map_or("—".to_string(), |ms| t.duration(ms)),
            row.worst_ms.map_or("—".to_string(), |ms| t.duration(ms))
        );
    }
    let _ = writeln!(
        page,
        "</table>\n<p class=\"method\">{}</p></section>",
        t.html("method.responses", &[])
    );
}

fn risks(page: &mut String, report: &MonthReport) {
    let t = report.language;
    let _ = writeln!(page, "<section><h2>{}</h2>", t.html("h.risks", &[]));
    if report.risks.is_empty() {
        let _ = writeln!(page, "<p>{}</p>", t.html("risks.none", &[]));
    } else {
        page.push_str("<ul>\n");
        for risk in &report.risks {
            let _ = writeln!(
                page,
                "<li class=\"risk-{}\">{}.</li>",
                risk.category,
                escape(&capitalise(&risk.text))
            );
        }
        page.push_str("</ul>\n");
    }
    if !report.declined.is_empty() {
        let _ = write!(page, "<h3>{}</h3>\n<table>", t.html("h.declined", &[]));
        page.push_str(&header_row(
            report,
            &["th.measure", "th.machines", "th.decided", "th.capped"],
        ));
        for row in &report.declined {
            let capped = if row.capped.is_empty() {
                t.html("declined.none", &[])
            } else {
                row.capped
                    .iter()
                    .map(|text| escape(text))
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            let _ = writeln!(
                page,
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{capped} <span class=\"method\">{}</span></td></tr>",
                escape(&row.measure),
                row.note
                    .as_deref()
                    .map(|note| format!("<br><span class=\"method\">{}</span>", escape(note)))
                    .unwrap_or_default(),
                escape(&row.scope),
                escape(row.decided.as_deref().unwrap_or("—")),
                t.html(
                    "declined.at_most",
                    &[("severity", &escape(&severity(report, row.at_most)))]
                )
            );
        }
        page.push_str("</table>\n");
    }
    page.push_str("</section>\n");
}

fn trends(page: &mut String, report: &MonthReport) {
    if report.previous.is_empty() {
        return;
    }
    let t = report.language;
    let _ = write!(
        page,
        "<section><h2>{}</h2>\n<table>",
        t.html("h.trends", &[])
    );
    page.push_str(&header_row(
        report,
        &[
            "th.month",
            "#th.available",
            "#th.downtime",
            "#th.alerts",
            "#th.foreseen",
        ],
    ));
    let _ = writeln!(
        page,
        "<tr><td><b>{}</b></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
        escape(&t.month_title(report.month)),
        t.percent(report.availability),
        t.duration(report.downtime_ms),
        report.episodes.len(),
        report.foreseen.len()
    );
    for trend in &report.previous {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&t.month_title(trend.month)),
            t.percent(trend.availability),
            t.duration(trend.downtime_ms),
            trend.alerts,
            trend.foreseen
        );
    }
    let _ = writeln!(
        page,
        "</table>\n<p class=\"method\">{}</p></section>",
        t.html("method.trends", &[])
    );
}

fn inventory(page: &mut String, report: &MonthReport) {
    let t = report.language;
    let _ = write!(
        page,
        "<section><h2>{}</h2>\n<table>",
        t.html("h.inventory", &[])
    );
    page.push_str(&header_row(
        report,
        &[
            "th.host",
            "th.role",
            "th.os",
            "th.cpu",
            "th.ram",
            "th.disks",
            "th.agent",
            "th.first_seen",
            "th.last_seen",
        ],
    ));
    for row in &report.inventory {
        let disks: Vec<String> = row
            .disks
            .iter()
            .map(|(mountpoint, bytes)| {
                format!(
                    "{} {}",
                    escape(mountpoint),
                    escape(&gigabytes(report, *bytes))
                )
            })
            .collect();
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&row.host),
            escape(row.role.as_deref().unwrap_or("—")),
            escape(or_dash(&row.os)),
            escape(or_dash(&row.cpu)),
            if row.memory_bytes > 0 { escape(&gigabytes(report, row.memory_bytes)) } else { "—".to_string() },
            if disks.is_empty() { "—".to_string() } else { disks.join("<br>") },
            escape(or_dash(&row.agent_version)),
            row.first_seen_ms.map_or("—".to_string(), |ms| local_date(report, ms)),
            row.last_seen_ms.map_or("—".to_string(), |ms| local_date_time(report, ms))
        );
    }
    page.push_str("</table></section>\n");
}

fn or_dash(text: &str) -> &str {
    if text.trim().is_empty() {
        "—"
    } else {
        text
    }
}

fn gigabytes(report: &MonthReport, bytes: u64) -> String {
    let t = report.language;
    t.text("unit.gb", &[("n", &t.number(bytes as f64 / 1e9, 0))])
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
