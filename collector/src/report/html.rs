//! The report as one self-contained HTML page: inline CSS (screen and print, A4 or Letter,
//! whichever paper the printer has), inline SVG charts, no script, no font, no image or
//! link fetched from anywhere. Plain words first; the method behind each figure is on the
//! page, next to it.

use super::figures::{HostAvailability, AVOIDED_PER_FAILURE_MS};
use super::MonthReport;
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

/// "2 h 10 min", "45 min", "0 min".
pub fn duration(ms: i64) -> String {
    let minutes = (ms.max(0) + 30_000) / 60_000;
    let (days, hours, minutes) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    match (days, hours, minutes) {
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// "99.62 %".
pub fn percent(share: f64) -> String {
    format!("{:.2} %", 100.0 * share)
}

fn money(report: &MonthReport, amount: f64) -> String {
    format!("{} {:.2}", report.currency.as_deref().unwrap_or(""), amount)
        .trim()
        .to_string()
}

fn zone(report: &MonthReport) -> TimeZone {
    TimeZone::get(&report.time_zone).unwrap_or(TimeZone::UTC)
}

fn local(report: &MonthReport, ms: i64, format: &str) -> String {
    Timestamp::from_millisecond(ms)
        .map(|at| {
            at.to_zoned_datetime(zone(report))
                .strftime(format)
                .to_string()
        })
        .unwrap_or_default()
}

/// "the 14th", in the client's zone; with the month when it is not the report's month.
fn day_of(report: &MonthReport, ms: i64) -> String {
    let Ok(at) = Timestamp::from_millisecond(ms) else {
        return String::new();
    };
    let date = at.to_zoned_datetime(zone(report)).date();
    let day = date.day();
    let suffix = match (day % 10, day % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    if date.year() == report.month.year && date.month() == report.month.month {
        format!("the {day}{suffix}")
    } else {
        format!("{day}{suffix} {}", date.strftime("%B"))
    }
}

/// One sentence for a failure the forecast saw coming.
pub fn foreseen_sentence(report: &MonthReport, item: &super::figures::Foreseen) -> String {
    let predicted = day_of(report, item.predicted_failure_ms);
    let resolved = day_of(report, item.resolved_ms);
    let label = |name: &str| item.labels.get(name).cloned().unwrap_or_default();
    match item.kind.as_deref() {
        Some("disk_full") => format!(
            "disk {} on {} would have been full around {predicted}; space was freed by {resolved}",
            label("mountpoint"),
            item.host
        ),
        Some("memory_exhaustion") => format!(
            "memory on {} would have run out around {predicted}; it was relieved on {resolved}",
            item.host
        ),
        _ => format!(
            "{} on {} foresaw a failure around {predicted}; it was dealt with on {resolved}",
            item.rule, item.host
        ),
    }
}

/// The ten-second paragraph.
pub fn summary(report: &MonthReport) -> String {
    let hosts = report.hosts.len();
    let mut text = format!(
        "In {} Vigil watched {hosts} machine{} of {} around the clock. They were available {} of \
         the time",
        report.month.title(),
        if hosts == 1 { "" } else { "s" },
        report.client_name,
        percent(report.availability)
    );
    if report.downtime_ms == 0 {
        text.push_str(", with no unplanned downtime.");
    } else {
        let _ = write!(
            text,
            "; {} of unplanned downtime, {} of it in business hours",
            duration(report.downtime_ms),
            duration(report.downtime_business_ms)
        );
        match report.downtime_cost {
            Some(cost) if report.costly_downtime_ms > 0 => {
                let _ = write!(text, ", cost about {}.", money(report, cost));
            }
            _ => text.push('.'),
        }
    }
    match report.foreseen.len() {
        0 => {}
        1 => text.push_str(" One failure was foreseen and prevented."),
        n => {
            let _ = write!(text, " {n} failures were foreseen and prevented.");
        }
    }
    let (met, counted): (usize, usize) =
        report.responses.iter().fold((0, 0), |(met, counted), row| {
            (met + row.met, counted + row.met + row.missed)
        });
    if counted > 0 {
        let _ = write!(
            text,
            " {met} of {counted} alerts that needed a response got it within the contract's time."
        );
    }
    let open_risks = report.risks.len();
    if open_risks > 0 {
        let _ = write!(
            text,
            " {open_risks} risk{} ahead need{} a decision.",
            if open_risks == 1 { "" } else { "s" },
            if open_risks == 1 { "s" } else { "" }
        );
    }
    text
}

/// The whole page.
pub fn render(report: &MonthReport) -> String {
    let mut page = String::with_capacity(32 * 1024);
    let title = format!(
        "{} — IT report for {}",
        escape(&report.client_name),
        report.month.title()
    );
    let _ = writeln!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header><h1>{title}</h1>\n<p class=\"sub\">{} to {} ({}) · contract version {}</p></header>",
        local(report, report.start_ms, "%Y-%m-%d"),
        local(report, report.end_ms - 1, "%Y-%m-%d"),
        escape(&report.time_zone),
        report.policy_version
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
    let _ =
        writeln!(
        page,
        "<footer>Made by Vigil from stored data: the alert history with the contract version in \
         force for each alert, acknowledgements, presence and inventory. Contract version {} \
         ({}). Range {} to {} UTC.{}{}</footer>\n</body>\n</html>",
        report.policy_version,
        escape(&report.policy_digest),
        Timestamp::from_millisecond(report.start_ms).map(|t| t.to_string()).unwrap_or_default(),
        Timestamp::from_millisecond(report.end_ms).map(|t| t.to_string()).unwrap_or_default(),
        if report.unreadable_history_lines > 0 {
            format!(
                " {} line(s) of the alert history could not be read and are not counted.",
                report.unreadable_history_lines
            )
        } else {
            String::new()
        },
        report
            .store_note
            .as_deref()
            .map(|note| format!(" Note: {}.", escape(note)))
            .unwrap_or_default()
    );
    page
}

fn figures_row(page: &mut String, report: &MonthReport) {
    let cost = report
        .downtime_cost
        .map_or("not in contract".to_string(), |cost| money(report, cost));
    let alerts: usize = report.episodes.len();
    let _ = writeln!(
        page,
        "<div class=\"figures\">\
         <div class=\"figure\"><b>{}</b><span>availability</span></div>\
         <div class=\"figure\"><b>{}</b><span>downtime in business hours</span></div>\
         <div class=\"figure\"><b>{}</b><span>cost of downtime</span></div>\
         <div class=\"figure\"><b>{}</b><span>failures foreseen and prevented</span></div>\
         <div class=\"figure\"><b>{alerts}</b><span>alerts</span></div></div>",
        percent(report.availability),
        duration(report.downtime_business_ms),
        escape(&cost),
        report.foreseen.len()
    );
}

fn availability(page: &mut String, report: &MonthReport) {
    page.push_str("<section><h2>Availability</h2>\n");
    page.push_str(&timeline(report));
    page.push_str(
        "<table><tr><th>Host</th><th>Role</th><th class=\"num\">Available</th>\
         <th class=\"num\">Downtime</th><th class=\"num\">In business hours</th>\
         <th class=\"num\">In maintenance (not counted)</th></tr>\n",
    );
    for host in &report.hosts {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&host.host),
            escape(host.role.as_deref().unwrap_or("—")),
            percent(host.availability()),
            duration(host.downtime_ms),
            duration(host.downtime_business_ms),
            duration(host.maintenance_ms)
        );
    }
    page.push_str("</table>\n<table><tr><th>Role</th><th class=\"num\">Hosts</th><th class=\"num\">Available</th></tr>\n");
    for (role, share, count) in &report.roles {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"num\">{count}</td><td class=\"num\">{}</td></tr>",
            escape(role.as_deref().unwrap_or("no role")),
            percent(*share)
        );
    }
    page.push_str(
        "</table>\n<p class=\"method\">Downtime is the time a host stopped reporting without \
         saying why, from its last report until it came back. A machine whose agent announced \
         a shutdown, a sleep or a reboot (back in time) was offline, not down; an outage inside \
         a maintenance window of the contract is shown but not counted.</p></section>\n",
    );
}

/// One row per host across the month: green up, red down, grey maintenance.
fn timeline(report: &MonthReport) -> String {
    let width = 700.0;
    let label_width = 130.0;
    let row = 18.0;
    let span = (report.end_ms - report.start_ms).max(1) as f64;
    let x = |ms: i64| label_width + (width - label_width) * (ms - report.start_ms) as f64 / span;
    let height = 24.0 + row * report.hosts.len() as f64;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"availability of each \
         host over the month\" xmlns=\"http://www.w3.org/2000/svg\">\n"
    );
    // Day ticks every seventh day, labelled with the local date.
    let mut day = report.start_ms;
    let mut ticks = 0;
    while day < report.end_ms && ticks < 6 {
        let _ = writeln!(
            svg,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"14\" y2=\"{height}\" stroke=\"#d9dee4\"/>\
             <text x=\"{0:.1}\" y=\"10\" font-size=\"9\" fill=\"#5b6673\">{1}</text>",
            x(day),
            local(report, day, "%d %b")
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
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{} to {}</title></rect>",
                x(outage.start_ms),
                (x(outage.end_ms) - x(outage.start_ms)).max(1.5),
                row - 5.0,
                local(report, outage.start_ms, "%Y-%m-%d %H:%M"),
                local(report, outage.end_ms, "%Y-%m-%d %H:%M")
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
    let _ = write!(
        page,
        "<section><h2>Downtime and its cost</h2>\n<table>\
         <tr><td>In business hours</td><td class=\"num\">{}</td></tr>\
         <tr><td>Outside business hours</td><td class=\"num\">{}</td></tr>\
         <tr><td>Business hours with a critical machine down</td><td class=\"num\">{}</td></tr>\
         <tr><td>Cost at the contract's {} per hour</td><td class=\"num\">{}</td></tr></table>\n\
         <p class=\"method\">Cost counts business hours only, and only outages the contract rates \
         critical or emergency (a workstation with a spare on the shelf costs nothing); several \
         machines down at once count once.</p>\n",
        duration(report.downtime_business_ms),
        duration(report.downtime_ms - report.downtime_business_ms),
        duration(report.costly_downtime_ms),
        report
            .cost_per_hour
            .map_or("(no cost stated)".to_string(), |per_hour| money(
                report, per_hour
            )),
        report
            .downtime_cost
            .map_or("—".to_string(), |cost| money(report, cost)),
    );
    let outages: Vec<_> = report
        .hosts
        .iter()
        .flat_map(|host| host.outages.iter().map(move |outage| (host, outage)))
        .collect();
    if !outages.is_empty() {
        page.push_str("<table><tr><th>Host</th><th>From</th><th>To</th><th class=\"num\">Counted</th><th class=\"num\">Business hours</th></tr>\n");
        for (host, outage) in outages {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(&host.host),
                local(report, outage.start_ms, "%a %d %b %H:%M"),
                local(report, outage.end_ms, "%a %d %b %H:%M"),
                duration(outage.counted_ms),
                duration(outage.business_ms)
            );
        }
        page.push_str("</table>\n");
    }
    page.push_str("</section>\n");
}

fn foreseen(page: &mut String, report: &MonthReport) {
    page.push_str("<section><h2>Failures foreseen and prevented</h2>\n");
    if report.foreseen.is_empty() {
        page.push_str(
            "<p>No forecast alert this month ran up to a failure that was then avoided.</p>\n",
        );
    } else {
        page.push_str("<ul>\n");
        for item in &report.foreseen {
            let _ = writeln!(
                page,
                "<li>{}.</li>",
                escape(&capitalise(&foreseen_sentence(report, item)))
            );
        }
        let _ = writeln!(
            page,
            "</ul>\n<p>Estimated downtime avoided: <b>{}</b>{}.</p>",
            duration(report.avoided_downtime_ms),
            report
                .avoided_cost
                .map(|cost| format!(", about <b>{}</b>", escape(&money(report, cost))))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        page,
        "<p class=\"method\">A failure counts as foreseen and prevented when a forecast alert \
         (a disk or memory running out) was resolved before the instant its forecast gave. Each \
         is counted as {} of downtime avoided at the contract's cost per hour — far less than a \
         full disk or exhausted memory usually costs — and no more.</p></section>",
        duration(AVOIDED_PER_FAILURE_MS)
    );
}

fn responses(page: &mut String, report: &MonthReport) {
    page.push_str("<section><h2>Alerts and response times</h2>\n<table><tr><th>Severity</th><th class=\"num\">Alerts</th><th>Contract target</th><th class=\"num\">Met</th><th class=\"num\">Missed</th><th class=\"num\">Median</th><th class=\"num\">Worst</th></tr>\n");
    for row in &report.responses {
        let missed_class = if row.missed > 0 { "missed" } else { "" };
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num met\">{}</td>\
             <td class=\"num {missed_class}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            row.severity,
            row.alerts,
            escape(&row.target),
            row.met,
            row.missed,
            row.median_ms.map_or("—".to_string(), duration),
            row.worst_ms.map_or("—".to_string(), duration)
        );
    }
    page.push_str(
        "</table>\n<p class=\"method\">Response time runs from delivery to the first \
         acknowledgement, in business hours where the contract's target is. An alert that \
         cleared by itself before its response was due is not counted; one nobody acknowledged \
         in time is missed.</p></section>\n",
    );
}

fn risks(page: &mut String, report: &MonthReport) {
    page.push_str("<section><h2>Risks ahead</h2>\n");
    if report.risks.is_empty() {
        page.push_str(
            "<p>Nothing in the stored data points to a failure in the next 90 days.</p>\n",
        );
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
        page.push_str("<h3>Preventive measures declined — the accepted risk</h3>\n<table><tr><th>Measure</th><th>Machines</th><th>Decided</th><th>Alerts capped this month</th></tr>\n");
        for row in &report.declined {
            let capped = if row.capped.is_empty() {
                "none".to_string()
            } else {
                row.capped
                    .iter()
                    .map(|text| escape(text))
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            let _ = writeln!(
                page,
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{capped} <span class=\"method\">(at most {})</span></td></tr>",
                escape(&row.measure.replace('_', " ")),
                row.note
                    .as_deref()
                    .map(|note| format!("<br><span class=\"method\">{}</span>", escape(note)))
                    .unwrap_or_default(),
                escape(&row.scope),
                escape(row.decided.as_deref().unwrap_or("—")),
                row.at_most
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
    page.push_str("<section><h2>Month over month</h2>\n<table><tr><th>Month</th><th class=\"num\">Available</th><th class=\"num\">Downtime</th><th class=\"num\">Alerts</th><th class=\"num\">Foreseen</th></tr>\n");
    let _ = writeln!(
        page,
        "<tr><td><b>{}</b></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
        report.month,
        percent(report.availability),
        duration(report.downtime_ms),
        report.episodes.len(),
        report.foreseen.len()
    );
    for trend in &report.previous {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            trend.month,
            percent(trend.availability),
            duration(trend.downtime_ms),
            trend.alerts,
            trend.foreseen
        );
    }
    page.push_str("</table>\n<p class=\"method\">Earlier months are computed from their own alert history with this month's contract.</p></section>\n");
}

fn inventory(page: &mut String, report: &MonthReport) {
    page.push_str("<section><h2>Appendix: inventory</h2>\n<table><tr><th>Host</th><th>Role</th><th>OS</th><th>CPU</th><th class=\"num\">RAM</th><th>Disks</th><th>Agent</th><th>First seen</th><th>Last seen</th></tr>\n");
    for row in &report.inventory {
        let disks: Vec<String> = row
            .disks
            .iter()
            .map(|(mountpoint, bytes)| format!("{} {}", escape(mountpoint), gigabytes(*bytes)))
            .collect();
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&row.host),
            escape(row.role.as_deref().unwrap_or("—")),
            escape(or_dash(&row.os)),
            escape(or_dash(&row.cpu)),
            if row.memory_bytes > 0 { gigabytes(row.memory_bytes) } else { "—".to_string() },
            if disks.is_empty() { "—".to_string() } else { disks.join("<br>") },
            escape(or_dash(&row.agent_version)),
            row.first_seen_ms.map_or("—".to_string(), |ms| local(report, ms, "%Y-%m-%d")),
            row.last_seen_ms.map_or("—".to_string(), |ms| local(report, ms, "%Y-%m-%d %H:%M"))
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

fn gigabytes(bytes: u64) -> String {
    format!("{:.0} GB", bytes as f64 / 1e9)
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
