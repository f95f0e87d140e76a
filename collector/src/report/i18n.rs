//! The report in the client's language (`[report] language` in the contract: `en`, the
//! default, `de` or `fr`): one catalog per language with every word the page and its email
//! say, keyed alike (a test fails when a key or a placeholder is missing in one of them),
//! and the formats that differ by language — numbers (decimal comma, thousands separator),
//! amounts of money (where the currency goes), durations, dates, month and weekday names,
//! the day of the month ("the 14th", "14.", "14").
//!
//! A template names its values in braces (`{host}`); [`Language::text`] fills them in as
//! given, [`Language::html`] escapes the template and fills in values that are already HTML.

use jiff::civil::{Date, Weekday};
use std::fmt::Write as _;

/// A language the report is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    #[default]
    En,
    De,
    Fr,
}

impl Language {
    pub const ALL: [Language; 3] = [Language::En, Language::De, Language::Fr];

    /// The code a contract writes: `en`, `de`, `fr`.
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::De => "de",
            Language::Fr => "fr",
        }
    }

    pub fn from_code(code: &str) -> Option<Language> {
        Language::ALL
            .into_iter()
            .find(|language| language.code() == code.trim())
    }

    /// The known code nearest to what was written (a code or a language's name in English
    /// or in itself), for the error that refuses an unknown one.
    pub fn nearest(written: &str) -> &'static str {
        const NAMES: [(&str, &str); 9] = [
            ("en", "en"),
            ("english", "en"),
            ("de", "de"),
            ("german", "de"),
            ("deutsch", "de"),
            ("fr", "fr"),
            ("french", "fr"),
            ("français", "fr"),
            ("francais", "fr"),
        ];
        let written = written.trim().to_lowercase();
        NAMES
            .iter()
            .min_by_key(|(name, _)| strsim::levenshtein(&written, name))
            .map_or("en", |(_, code)| code)
    }

    /// Every known code, for messages: "en, de, fr".
    pub fn known() -> String {
        Language::ALL.map(Language::code).join(", ")
    }

    fn catalog(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Language::En => EN,
            Language::De => DE,
            Language::Fr => FR,
        }
    }

    /// The template of `key`; the English one if this language lacks it (the catalogs'
    /// test keeps that from happening), the key itself if nobody has it.
    pub fn template(self, key: &'static str) -> &'static str {
        let find = |catalog: &'static [(&'static str, &'static str)]| {
            catalog
                .iter()
                .find(|(name, _)| *name == key)
                .map(|(_, text)| *text)
        };
        find(self.catalog()).or_else(|| find(EN)).unwrap_or(key)
    }

    /// `key`'s template with `values` filled in as they are (plain text).
    pub fn text(self, key: &'static str, values: &[(&str, &str)]) -> String {
        fill(self.template(key).to_string(), values)
    }

    /// `key`'s template escaped for HTML, with `values` (already HTML) filled in.
    pub fn html(self, key: &'static str, values: &[(&str, &str)]) -> String {
        fill(super::html::escape(self.template(key)), values)
    }

    /// `value` with `decimals` places, the decimal mark and thousands separator of the
    /// language: 1,234.5 · 1.234,5 · 1 234,5.
    pub fn number(self, value: f64, decimals: usize) -> String {
        let (thousands, mark) = match self {
            Language::En => (",", "."),
            Language::De => (".", ","),
            // A narrow no-break space, as French typography groups digits.
            Language::Fr => ("\u{202f}", ","),
        };
        let text = format!("{:.*}", decimals, value.abs());
        let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
        let mut out = String::new();
        if value < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
            out.push('-');
        }
        for (index, digit) in whole.chars().enumerate() {
            if index > 0 && (whole.len() - index) % 3 == 0 {
                out.push_str(thousands);
            }
            out.push(digit);
        }
        if !fraction.is_empty() {
            out.push_str(mark);
            out.push_str(fraction);
        }
        out
    }

    /// An amount in `currency`, where the language puts it: EUR 450.00 · 450,00 EUR.
    pub fn money(self, currency: Option<&str>, amount: f64) -> String {
        let amount = self.number(amount, 2);
        match currency.filter(|currency| !currency.is_empty()) {
            Some(currency) => self.text("money", &[("currency", currency), ("amount", &amount)]),
            None => amount,
        }
    }

    /// A share as a percentage with two places: 99.62 % · 99,62 %.
    pub fn percent(self, share: f64) -> String {
        self.text("percent", &[("value", &self.number(100.0 * share, 2))])
    }

    /// A duration rounded to the minute: 2 h 10 min · 2 Std. 10 Min. · 3 j 4 h.
    pub fn duration(self, ms: i64) -> String {
        let minutes = (ms.max(0) + 30_000) / 60_000;
        let (days, hours, minutes) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
        let unit =
            |key: &'static str, count: i64| self.text(key, &[("n", &self.number(count as f64, 0))]);
        match (days, hours, minutes) {
            (0, 0, m) => unit("unit.min", m),
            (0, h, 0) => unit("unit.h", h),
            (0, h, m) => format!("{} {}", unit("unit.h", h), unit("unit.min", m)),
            (d, h, _) => format!("{} {}", unit("unit.d", d), unit("unit.h", h)),
        }
    }

    /// The month's name: November · November · novembre.
    pub fn month_name(self, month: i8) -> &'static str {
        self.template(MONTHS[usize::try_from(month - 1).unwrap_or(0).min(11)])
    }

    /// The month's short name: Nov · Nov. · nov.
    pub fn month_short(self, month: i8) -> &'static str {
        self.template(MONTHS_SHORT[usize::try_from(month - 1).unwrap_or(0).min(11)])
    }

    /// The weekday's short name: Tue · Di. · mar.
    pub fn weekday_short(self, weekday: Weekday) -> &'static str {
        self.template(WEEKDAYS_SHORT[usize::from(weekday.to_monday_zero_offset() as u8)])
    }

    /// "November 2026" · "November 2026" · "novembre 2026".
    pub fn month_title(self, month: super::Month) -> String {
        format!("{} {}", self.month_name(month.month), month.year)
    }

    /// A date as the language writes it: 2026-11-14 · 14.11.2026 · 14/11/2026.
    pub fn date(self, date: Date) -> String {
        match self {
            Language::En => date.strftime("%Y-%m-%d").to_string(),
            Language::De => date.strftime("%d.%m.%Y").to_string(),
            Language::Fr => date.strftime("%d/%m/%Y").to_string(),
        }
    }

    /// A day and month in short: 14 Nov · 14. Nov. · 14 nov.
    pub fn day_month(self, date: Date) -> String {
        match self {
            Language::De => format!("{}. {}", date.day(), self.month_short(date.month())),
            _ => format!("{} {}", date.day(), self.month_short(date.month())),
        }
    }

    /// The day of the month in a sentence: "the 14th" (or "14th December" in another month)
    /// · "14." ("14. Dezember") · "14" ("14 décembre", "1er").
    pub fn day_of_month(self, date: Date, same_month: bool) -> String {
        let day = date.day();
        let mut out = match self {
            Language::En => {
                let suffix = match (day % 10, day % 100) {
                    (_, 11..=13) => "th",
                    (1, _) => "st",
                    (2, _) => "nd",
                    (3, _) => "rd",
                    _ => "th",
                };
                if same_month {
                    format!("the {day}{suffix}")
                } else {
                    format!("{day}{suffix}")
                }
            }
            Language::De => format!("{day}."),
            Language::Fr if day == 1 => "1er".to_string(),
            Language::Fr => day.to_string(),
        };
        if !same_month {
            let _ = write!(out, " {}", self.month_name(date.month()));
        }
        out
    }
}

/// `template` with each `{name}` replaced by its value.
fn fill(mut template: String, values: &[(&str, &str)]) -> String {
    for (name, value) in values {
        template = template.replace(&format!("{{{name}}}"), value);
    }
    template
}

const MONTHS: [&str; 12] = [
    "month.1", "month.2", "month.3", "month.4", "month.5", "month.6", "month.7", "month.8",
    "month.9", "month.10", "month.11", "month.12",
];
const MONTHS_SHORT: [&str; 12] = [
    "mon.1", "mon.2", "mon.3", "mon.4", "mon.5", "mon.6", "mon.7", "mon.8", "mon.9", "mon.10",
    "mon.11", "mon.12",
];
const WEEKDAYS_SHORT: [&str; 7] = ["wd.1", "wd.2", "wd.3", "wd.4", "wd.5", "wd.6", "wd.7"];

/// English: the catalog every other one is checked against.
pub const EN: &[(&str, &str)] = &[
    ("title", "{client} — IT report for {month}"),
    ("sub", "{from} to {to} ({zone}) · contract version {version}"),
    ("footer", "Made by Vigil from stored data: the alert history with the contract version in force for each alert, acknowledgements, presence and inventory. Contract version {version} ({digest}). Range {from} to {to} UTC."),
    ("footer.unreadable", "{count} line(s) of the alert history could not be read and are not counted."),
    ("footer.store", "Note: stored series could not be read (a running collector holds the store); availability and alerts come from the alert history, risks from stored data are left out."),
    ("summary.watched", "In {month} Vigil watched {hosts} machines of {client} around the clock. They were available {availability} of the time"),
    ("summary.watched_one", "In {month} Vigil watched 1 machine of {client} around the clock. It was available {availability} of the time"),
    ("summary.no_downtime", ", with no unplanned downtime."),
    ("summary.downtime", "; {downtime} of unplanned downtime, {business} of it in business hours"),
    ("summary.cost", ", cost about {cost}."),
    ("summary.end", "."),
    ("summary.foreseen_one", "One failure was foreseen and prevented."),
    ("summary.foreseen_many", "{count} failures were foreseen and prevented."),
    ("summary.responses", "{met} of {counted} alerts that needed a response got it within the contract's time."),
    ("summary.risks_one", "1 risk ahead needs a decision."),
    ("summary.risks_many", "{count} risks ahead need a decision."),
    ("figure.availability", "availability"),
    ("figure.downtime_business", "downtime in business hours"),
    ("figure.cost", "cost of downtime"),
    ("figure.foreseen", "failures foreseen and prevented"),
    ("figure.alerts", "alerts"),
    ("figure.no_cost", "not in contract"),
    ("h.availability", "Availability"),
    ("h.downtime", "Downtime and its cost"),
    ("h.foreseen", "Failures foreseen and prevented"),
    ("h.responses", "Alerts and response times"),
    ("h.risks", "Risks ahead"),
    ("h.declined", "Preventive measures declined — the accepted risk"),
    ("h.trends", "Month over month"),
    ("h.inventory", "Appendix: inventory"),
    ("th.host", "Host"),
    ("th.role", "Role"),
    ("th.available", "Available"),
    ("th.downtime", "Downtime"),
    ("th.in_business_hours", "In business hours"),
    ("th.maintenance", "In maintenance (not counted)"),
    ("th.hosts", "Hosts"),
    ("th.from", "From"),
    ("th.to", "To"),
    ("th.counted", "Counted"),
    ("th.business_hours", "Business hours"),
    ("th.severity", "Severity"),
    ("th.alerts", "Alerts"),
    ("th.target", "Contract target"),
    ("th.met", "Met"),
    ("th.missed", "Missed"),
    ("th.median", "Median"),
    ("th.worst", "Worst"),
    ("th.measure", "Measure"),
    ("th.machines", "Machines"),
    ("th.decided", "Decided"),
    ("th.capped", "Alerts capped this month"),
    ("th.month", "Month"),
    ("th.foreseen", "Foreseen"),
    ("th.os", "OS"),
    ("th.cpu", "CPU"),
    ("th.ram", "RAM"),
    ("th.disks", "Disks"),
    ("th.agent", "Agent"),
    ("th.first_seen", "First seen"),
    ("th.last_seen", "Last seen"),
    ("role.none", "no role"),
    ("chart.label", "availability of each host over the month"),
    ("span", "{from} to {to}"),
    ("method.availability", "Downtime is the time a host stopped reporting without saying why, from its last report until it came back. A machine whose agent announced a shutdown, a sleep or a reboot (back in time) was offline, not down; an outage inside a maintenance window of the contract is shown but not counted."),
    ("row.in_business_hours", "In business hours"),
    ("row.outside_business_hours", "Outside business hours"),
    ("row.critical_down", "Business hours with a critical machine down"),
    ("row.cost_at", "Cost at the contract's {rate} per hour"),
    ("cost.none_stated", "(no cost stated)"),
    ("method.cost", "Cost counts business hours only, and only outages the contract rates critical or emergency (a workstation with a spare on the shelf costs nothing); several machines down at once count once."),
    ("foreseen.none", "No forecast alert this month ran up to a failure that was then avoided."),
    ("foreseen.avoided", "Estimated downtime avoided: {duration}"),
    ("foreseen.avoided_cost", "Estimated downtime avoided: {duration}, about {cost}"),
    ("method.foreseen", "A failure counts as foreseen and prevented when a forecast alert (a disk or memory running out) was resolved before the instant its forecast gave. Each is counted as {duration} of downtime avoided at the contract's cost per hour — far less than a full disk or exhausted memory usually costs — and no more."),
    ("foreseen.disk", "disk {mountpoint} on {host} would have been full around {predicted}; space was freed by {resolved}"),
    ("foreseen.memory", "memory on {host} would have run out around {predicted}; it was relieved on {resolved}"),
    ("foreseen.other", "{rule} on {host} foresaw a failure around {predicted}; it was dealt with on {resolved}"),
    ("method.responses", "Response time runs from delivery to the first acknowledgement, in business hours where the contract's target is. An alert that cleared by itself before its response was due is not counted; one nobody acknowledged in time is missed."),
    ("target.around_the_clock", "{duration} around the clock"),
    ("target.business_hour", "1 business hour"),
    ("target.business_hours", "{hours} business hours"),
    ("target.business_minutes", "{minutes} business minutes"),
    ("severity.emergency", "emergency"),
    ("severity.critical", "critical"),
    ("severity.warning", "warning"),
    ("severity.notice", "notice"),
    ("risks.none", "Nothing in the stored data points to a failure in the next 90 days."),
    ("declined.none", "none"),
    ("declined.at_most", "(at most {severity})"),
    ("declined.capped", "{rule} on {host}, {date}"),
    ("measure.backups", "backups"),
    ("measure.disk_replacement", "disk replacement"),
    ("measure.storage_upgrade", "storage upgrade"),
    ("measure.memory_upgrade", "memory upgrade"),
    ("measure.cooling", "cooling"),
    ("scope.every", "every host"),
    ("scope.role", "role {names}"),
    ("scope.roles", "roles {names}"),
    ("scope.host", "host {names}"),
    ("scope.hosts", "hosts {names}"),
    ("scope.and", "{first} and {second}"),
    ("risk.accepted", "{text} — {measure} declined on {date}: an accepted risk"),
    ("risk.accepted_undated", "{text} — {measure} declined: an accepted risk"),
    ("risk.smart_grew", "drive {device} on {host}: {attribute} grew from {from} to {to} this month; it is wearing out"),
    ("smart.reallocated_sectors", "reallocated sectors"),
    ("smart.pending_sectors", "pending sectors"),
    ("risk.nvme_wear", "drive {device} on {host} has used {percent} of its rated life"),
    ("risk.backup_stale", "backup '{job}' on {host} last succeeded {days} days before the month's end ({date})"),
    ("risk.restart", "{host} has waited {days} days for a restart to finish installing updates (since {date})"),
    ("risk.disk", "disk {mountpoint} on {host} ({used} used) fills in about {days} days at this month's rate, around {date}"),
    ("risk.os_ended", "{host} runs {os}, out of support since {date}: no more security updates"),
    ("risk.os_ending", "{host} runs {os}, whose support ends on {date}; plan the upgrade"),
    ("method.trends", "Earlier months are computed from their own alert history with this month's contract."),
    ("money", "{currency} {amount}"),
    ("percent", "{value} %"),
    ("unit.min", "{n} min"),
    ("unit.h", "{n} h"),
    ("unit.d", "{n} d"),
    ("unit.gb", "{n} GB"),
    ("inventory.cpu", "{model} ({cores} cores)"),
    ("mail.subject", "{client}: IT report for {month}"),
    ("mail.body", "The full report is attached ({file}); it opens in any browser and prints on A4 or Letter."),
    ("month.1", "January"), ("month.2", "February"), ("month.3", "March"), ("month.4", "April"),
    ("month.5", "May"), ("month.6", "June"), ("month.7", "July"), ("month.8", "August"),
    ("month.9", "September"), ("month.10", "October"), ("month.11", "November"),
    ("month.12", "December"),
    ("mon.1", "Jan"), ("mon.2", "Feb"), ("mon.3", "Mar"), ("mon.4", "Apr"), ("mon.5", "May"),
    ("mon.6", "Jun"), ("mon.7", "Jul"), ("mon.8", "Aug"), ("mon.9", "Sep"), ("mon.10", "Oct"),
    ("mon.11", "Nov"), ("mon.12", "Dec"),
    ("wd.1", "Mon"), ("wd.2", "Tue"), ("wd.3", "Wed"), ("wd.4", "Thu"), ("wd.5", "Fri"),
    ("wd.6", "Sat"), ("wd.7", "Sun"),
];

/// German.
pub const DE: &[(&str, &str)] = &[
    ("title", "{client} — IT-Bericht für {month}"),
    ("sub", "{from} bis {to} ({zone}) · Vertragsversion {version}"),
    ("footer", "Von Vigil aus gespeicherten Daten erstellt: dem Alarmverlauf mit der für jeden Alarm geltenden Vertragsversion, Bestätigungen, Anwesenheit und Inventar. Vertragsversion {version} ({digest}). Zeitraum {from} bis {to} UTC."),
    ("footer.unreadable", "{count} Zeile(n) des Alarmverlaufs waren nicht lesbar und sind nicht gezählt."),
    ("footer.store", "Hinweis: Gespeicherte Messreihen waren nicht lesbar (ein laufender Collector hält den Speicher); Verfügbarkeit und Alarme stammen aus dem Alarmverlauf, Risiken aus gespeicherten Daten fehlen."),
    ("summary.watched", "Im {month} hat Vigil {hosts} Rechner von {client} rund um die Uhr überwacht. Sie waren {availability} der Zeit verfügbar"),
    ("summary.watched_one", "Im {month} hat Vigil 1 Rechner von {client} rund um die Uhr überwacht. Er war {availability} der Zeit verfügbar"),
    ("summary.no_downtime", ", ohne ungeplante Ausfallzeit."),
    ("summary.downtime", "; {downtime} ungeplante Ausfallzeit, davon {business} während der Geschäftszeiten"),
    ("summary.cost", ", Kosten etwa {cost}."),
    ("summary.end", "."),
    ("summary.foreseen_one", "Ein Ausfall wurde vorhergesehen und verhindert."),
    ("summary.foreseen_many", "{count} Ausfälle wurden vorhergesehen und verhindert."),
    ("summary.responses", "{met} von {counted} Alarmen, die eine Reaktion brauchten, wurden innerhalb der vertraglichen Frist bearbeitet."),
    ("summary.risks_one", "1 künftiges Risiko erfordert eine Entscheidung."),
    ("summary.risks_many", "{count} künftige Risiken erfordern eine Entscheidung."),
    ("figure.availability", "Verfügbarkeit"),
    ("figure.downtime_business", "Ausfallzeit in Geschäftszeiten"),
    ("figure.cost", "Kosten der Ausfallzeit"),
    ("figure.foreseen", "vorhergesehene und verhinderte Ausfälle"),
    ("figure.alerts", "Alarme"),
    ("figure.no_cost", "nicht im Vertrag"),
    ("h.availability", "Verfügbarkeit"),
    ("h.downtime", "Ausfallzeit und ihre Kosten"),
    ("h.foreseen", "Vorhergesehene und verhinderte Ausfälle"),
    ("h.responses", "Alarme und Reaktionszeiten"),
    ("h.risks", "Künftige Risiken"),
    ("h.declined", "Abgelehnte Vorsorgemaßnahmen — das akzeptierte Risiko"),
    ("h.trends", "Vergleich mit den Vormonaten"),
    ("h.inventory", "Anhang: Inventar"),
    ("th.host", "Rechner"),
    ("th.role", "Rolle"),
    ("th.available", "Verfügbar"),
    ("th.downtime", "Ausfallzeit"),
    ("th.in_business_hours", "In Geschäftszeiten"),
    ("th.maintenance", "In Wartung (nicht gezählt)"),
    ("th.hosts", "Rechner"),
    ("th.from", "Von"),
    ("th.to", "Bis"),
    ("th.counted", "Gezählt"),
    ("th.business_hours", "Geschäftszeiten"),
    ("th.severity", "Schweregrad"),
    ("th.alerts", "Alarme"),
    ("th.target", "Vertragliche Frist"),
    ("th.met", "Eingehalten"),
    ("th.missed", "Verfehlt"),
    ("th.median", "Median"),
    ("th.worst", "Längste"),
    ("th.measure", "Maßnahme"),
    ("th.machines", "Geräte"),
    ("th.decided", "Entschieden"),
    ("th.capped", "Diesen Monat begrenzte Alarme"),
    ("th.month", "Monat"),
    ("th.foreseen", "Vorhergesehen"),
    ("th.os", "Betriebssystem"),
    ("th.cpu", "Prozessor"),
    ("th.ram", "Arbeitsspeicher"),
    ("th.disks", "Datenträger"),
    ("th.agent", "Agent"),
    ("th.first_seen", "Zuerst gesehen"),
    ("th.last_seen", "Zuletzt gesehen"),
    ("role.none", "keine Rolle"),
    ("chart.label", "Verfügbarkeit jedes Rechners im Lauf des Monats"),
    ("span", "{from} bis {to}"),
    ("method.availability", "Ausfallzeit ist die Zeit, in der ein Rechner ohne Angabe von Gründen nichts mehr meldete, von seiner letzten Meldung bis zu seiner Rückkehr. Ein Gerät, dessen Agent ein Herunterfahren, einen Ruhezustand oder einen (rechtzeitigen) Neustart angekündigt hat, war ausgeschaltet, nicht ausgefallen; ein Ausfall in einem vertraglichen Wartungsfenster wird gezeigt, aber nicht gezählt."),
    ("row.in_business_hours", "In Geschäftszeiten"),
    ("row.outside_business_hours", "Außerhalb der Geschäftszeiten"),
    ("row.critical_down", "Geschäftszeit mit einem kritischen Gerät außer Betrieb"),
    ("row.cost_at", "Kosten zum vertraglichen Satz von {rate} pro Stunde"),
    ("cost.none_stated", "(keine Kosten vereinbart)"),
    ("method.cost", "Kosten zählen nur in Geschäftszeiten und nur für Ausfälle, die der Vertrag als kritisch oder Notfall einstuft (ein Arbeitsplatz mit Ersatzgerät im Regal kostet nichts); mehrere gleichzeitig ausgefallene Geräte zählen einmal."),
    ("foreseen.none", "Kein Prognosealarm dieses Monats lief auf einen Ausfall zu, der dann vermieden wurde."),
    ("foreseen.avoided", "Geschätzte vermiedene Ausfallzeit: {duration}"),
    ("foreseen.avoided_cost", "Geschätzte vermiedene Ausfallzeit: {duration}, etwa {cost}"),
    ("method.foreseen", "Ein Ausfall gilt als vorhergesehen und verhindert, wenn ein Prognosealarm (ein volllaufender Datenträger oder Arbeitsspeicher) vor dem vorhergesagten Zeitpunkt behoben war. Jeder zählt als {duration} vermiedene Ausfallzeit zum vertraglichen Stundensatz — weit weniger, als ein voller Datenträger oder erschöpfter Arbeitsspeicher meist kostet — und nicht mehr."),
    ("foreseen.disk", "Datenträger {mountpoint} auf {host} wäre um den {predicted} voll gewesen; Platz wurde bis zum {resolved} freigegeben"),
    ("foreseen.memory", "Der Arbeitsspeicher von {host} wäre um den {predicted} erschöpft gewesen; er wurde am {resolved} entlastet"),
    ("foreseen.other", "{rule} auf {host} sagte einen Ausfall um den {predicted} voraus; er wurde am {resolved} behoben"),
    ("method.responses", "Die Reaktionszeit läuft von der Zustellung bis zur ersten Bestätigung, in Geschäftszeiten, wo die vertragliche Frist in Geschäftszeiten gilt. Ein Alarm, der sich vor Ablauf der Frist von selbst erledigte, wird nicht gezählt; einer, den niemand rechtzeitig bestätigte, gilt als verfehlt."),
    ("target.around_the_clock", "{duration} rund um die Uhr"),
    ("target.business_hour", "1 Geschäftsstunde"),
    ("target.business_hours", "{hours} Geschäftsstunden"),
    ("target.business_minutes", "{minutes} Geschäftsminuten"),
    ("severity.emergency", "Notfall"),
    ("severity.critical", "kritisch"),
    ("severity.warning", "Warnung"),
    ("severity.notice", "Hinweis"),
    ("risks.none", "Nichts in den gespeicherten Daten deutet auf einen Ausfall in den nächsten 90 Tagen hin."),
    ("declined.none", "keine"),
    ("declined.at_most", "(höchstens {severity})"),
    ("declined.capped", "{rule} auf {host}, {date}"),
    ("measure.backups", "Datensicherung"),
    ("measure.disk_replacement", "Austausch von Datenträgern"),
    ("measure.storage_upgrade", "Speichererweiterung"),
    ("measure.memory_upgrade", "Arbeitsspeichererweiterung"),
    ("measure.cooling", "Kühlung"),
    ("scope.every", "alle Rechner"),
    ("scope.role", "Rolle {names}"),
    ("scope.roles", "Rollen {names}"),
    ("scope.host", "Rechner {names}"),
    ("scope.hosts", "Rechner {names}"),
    ("scope.and", "{first} und {second}"),
    ("risk.accepted", "{text} — {measure} am {date} abgelehnt: ein akzeptiertes Risiko"),
    ("risk.accepted_undated", "{text} — {measure} abgelehnt: ein akzeptiertes Risiko"),
    ("risk.smart_grew", "Laufwerk {device} auf {host}: {attribute} stiegen diesen Monat von {from} auf {to}; es nutzt sich ab"),
    ("smart.reallocated_sectors", "neu zugewiesene Sektoren"),
    ("smart.pending_sectors", "schwebende Sektoren"),
    ("risk.nvme_wear", "Laufwerk {device} auf {host} hat {percent} seiner vorgesehenen Lebensdauer verbraucht"),
    ("risk.backup_stale", "Sicherung '{job}' auf {host} war zuletzt {days} Tage vor Monatsende erfolgreich ({date})"),
    ("risk.restart", "{host} wartet seit {days} Tagen auf einen Neustart, um Updates fertig zu installieren (seit {date})"),
    ("risk.disk", "Datenträger {mountpoint} auf {host} ({used} belegt) ist beim Tempo dieses Monats in etwa {days} Tagen voll, um den {date}"),
    ("risk.os_ended", "{host} läuft mit {os}, ohne Herstellerunterstützung seit {date}: keine Sicherheitsupdates mehr"),
    ("risk.os_ending", "{host} läuft mit {os}, dessen Unterstützung am {date} endet; planen Sie das Upgrade"),
    ("method.trends", "Frühere Monate werden aus ihrem eigenen Alarmverlauf mit dem Vertrag dieses Monats berechnet."),
    ("money", "{amount} {currency}"),
    ("percent", "{value} %"),
    ("unit.min", "{n} Min."),
    ("unit.h", "{n} Std."),
    ("unit.d", "{n} T."),
    ("unit.gb", "{n} GB"),
    ("inventory.cpu", "{model} ({cores} Kerne)"),
    ("mail.subject", "{client}: IT-Bericht für {month}"),
    ("mail.body", "Der vollständige Bericht ist angehängt ({file}); er öffnet sich in jedem Browser und lässt sich auf A4 oder Letter drucken."),
    ("month.1", "Januar"), ("month.2", "Februar"), ("month.3", "März"), ("month.4", "April"),
    ("month.5", "Mai"), ("month.6", "Juni"), ("month.7", "Juli"), ("month.8", "August"),
    ("month.9", "September"), ("month.10", "Oktober"), ("month.11", "November"),
    ("month.12", "Dezember"),
    ("mon.1", "Jan."), ("mon.2", "Feb."), ("mon.3", "März"), ("mon.4", "Apr."), ("mon.5", "Mai"),
    ("mon.6", "Juni"), ("mon.7", "Juli"), ("mon.8", "Aug."), ("mon.9", "Sept."),
    ("mon.10", "Okt."), ("mon.11", "Nov."), ("mon.12", "Dez."),
    ("wd.1", "Mo."), ("wd.2", "Di."), ("wd.3", "Mi."), ("wd.4", "Do."), ("wd.5", "Fr."),
    ("wd.6", "Sa."), ("wd.7", "So."),
];

/// French.
pub const FR: &[(&str, &str)] = &[
    ("title", "{client} — rapport informatique de {month}"),
    ("sub", "du {from} au {to} ({zone}) · version du contrat {version}"),
    ("footer", "Établi par Vigil à partir des données enregistrées : l'historique des alertes avec la version du contrat en vigueur pour chacune, les prises en charge, la présence et l'inventaire. Version du contrat {version} ({digest}). Période du {from} au {to} UTC."),
    ("footer.unreadable", "{count} ligne(s) de l'historique des alertes n'ont pas pu être lues et ne sont pas comptées."),
    ("footer.store", "Remarque : les séries enregistrées n'ont pas pu être lues (un collecteur en marche tient le stockage) ; la disponibilité et les alertes viennent de l'historique des alertes, les risques issus des données enregistrées sont omis."),
    ("summary.watched", "En {month}, Vigil a surveillé {hosts} machines de {client} jour et nuit. Elles ont été disponibles {availability} du temps"),
    ("summary.watched_one", "En {month}, Vigil a surveillé 1 machine de {client} jour et nuit. Elle a été disponible {availability} du temps"),
    ("summary.no_downtime", ", sans interruption imprévue."),
    ("summary.downtime", " ; {downtime} d'interruption imprévue, dont {business} pendant les heures ouvrées"),
    ("summary.cost", ", pour un coût d'environ {cost}."),
    ("summary.end", "."),
    ("summary.foreseen_one", "Une panne a été anticipée et évitée."),
    ("summary.foreseen_many", "{count} pannes ont été anticipées et évitées."),
    ("summary.responses", "{met} alertes sur {counted} qui demandaient une intervention ont été prises en charge dans le délai du contrat."),
    ("summary.risks_one", "1 risque à venir demande une décision."),
    ("summary.risks_many", "{count} risques à venir demandent une décision."),
    ("figure.availability", "disponibilité"),
    ("figure.downtime_business", "interruption en heures ouvrées"),
    ("figure.cost", "coût des interruptions"),
    ("figure.foreseen", "pannes anticipées et évitées"),
    ("figure.alerts", "alertes"),
    ("figure.no_cost", "hors contrat"),
    ("h.availability", "Disponibilité"),
    ("h.downtime", "Interruptions et leur coût"),
    ("h.foreseen", "Pannes anticipées et évitées"),
    ("h.responses", "Alertes et délais d'intervention"),
    ("h.risks", "Risques à venir"),
    ("h.declined", "Mesures préventives refusées — le risque accepté"),
    ("h.trends", "Évolution d'un mois à l'autre"),
    ("h.inventory", "Annexe : inventaire"),
    ("th.host", "Machine"),
    ("th.role", "Rôle"),
    ("th.available", "Disponible"),
    ("th.downtime", "Interruption"),
    ("th.in_business_hours", "En heures ouvrées"),
    ("th.maintenance", "En maintenance (non comptée)"),
    ("th.hosts", "Machines"),
    ("th.from", "Début"),
    ("th.to", "Fin"),
    ("th.counted", "Comptée"),
    ("th.business_hours", "Heures ouvrées"),
    ("th.severity", "Gravité"),
    ("th.alerts", "Alertes"),
    ("th.target", "Délai du contrat"),
    ("th.met", "Respecté"),
    ("th.missed", "Manqué"),
    ("th.median", "Médiane"),
    ("th.worst", "Pire"),
    ("th.measure", "Mesure"),
    ("th.machines", "Machines concernées"),
    ("th.decided", "Décidé le"),
    ("th.capped", "Alertes plafonnées ce mois-ci"),
    ("th.month", "Mois"),
    ("th.foreseen", "Anticipées"),
    ("th.os", "Système"),
    ("th.cpu", "Processeur"),
    ("th.ram", "Mémoire vive"),
    ("th.disks", "Disques"),
    ("th.agent", "Agent"),
    ("th.first_seen", "Vue la première fois"),
    ("th.last_seen", "Vue la dernière fois"),
    ("role.none", "sans rôle"),
    ("chart.label", "disponibilité de chaque machine au cours du mois"),
    ("span", "du {from} au {to}"),
    ("method.availability", "L'interruption est le temps pendant lequel une machine a cessé de se signaler sans dire pourquoi, de son dernier signalement à son retour. Une machine dont l'agent a annoncé un arrêt, une mise en veille ou un redémarrage (revenue à temps) était éteinte, pas en panne ; une panne pendant une fenêtre de maintenance du contrat est montrée mais pas comptée."),
    ("row.in_business_hours", "En heures ouvrées"),
    ("row.outside_business_hours", "Hors heures ouvrées"),
    ("row.critical_down", "Heures ouvrées avec une machine critique en panne"),
    ("row.cost_at", "Coût au tarif du contrat de {rate} par heure"),
    ("cost.none_stated", "(aucun coût indiqué)"),
    ("method.cost", "Le coût ne compte que les heures ouvrées, et seulement les pannes que le contrat classe critiques ou urgentes (un poste avec un remplaçant en réserve ne coûte rien) ; plusieurs machines en panne en même temps comptent une fois."),
    ("foreseen.none", "Aucune alerte de prévision ce mois-ci n'a mené à une panne ensuite évitée."),
    ("foreseen.avoided", "Interruption évitée estimée : {duration}"),
    ("foreseen.avoided_cost", "Interruption évitée estimée : {duration}, soit environ {cost}"),
    ("method.foreseen", "Une panne compte comme anticipée et évitée lorsqu'une alerte de prévision (un disque ou une mémoire qui s'épuise) a été résolue avant l'instant prévu. Chacune compte pour {duration} d'interruption évitée au tarif horaire du contrat — bien moins que ce que coûte d'ordinaire un disque plein ou une mémoire épuisée — et pas davantage."),
    ("foreseen.disk", "le disque {mountpoint} de {host} aurait été plein vers le {predicted} ; de l'espace a été libéré dès le {resolved}"),
    ("foreseen.memory", "la mémoire de {host} aurait été épuisée vers le {predicted} ; elle a été soulagée le {resolved}"),
    ("foreseen.other", "{rule} sur {host} prévoyait une panne vers le {predicted} ; elle a été traitée le {resolved}"),
    ("method.responses", "Le délai d'intervention court de l'envoi à la première prise en charge, en heures ouvrées lorsque le délai du contrat l'est. Une alerte disparue d'elle-même avant l'échéance n'est pas comptée ; une alerte que personne n'a prise en charge à temps est manquée."),
    ("target.around_the_clock", "{duration} jour et nuit"),
    ("target.business_hour", "1 heure ouvrée"),
    ("target.business_hours", "{hours} heures ouvrées"),
    ("target.business_minutes", "{minutes} minutes ouvrées"),
    ("severity.emergency", "urgence"),
    ("severity.critical", "critique"),
    ("severity.warning", "avertissement"),
    ("severity.notice", "information"),
    ("risks.none", "Rien dans les données enregistrées n'annonce de panne dans les 90 prochains jours."),
    ("declined.none", "aucune"),
    ("declined.at_most", "(au plus {severity})"),
    ("declined.capped", "{rule} sur {host}, {date}"),
    ("measure.backups", "sauvegardes"),
    ("measure.disk_replacement", "remplacement des disques"),
    ("measure.storage_upgrade", "extension du stockage"),
    ("measure.memory_upgrade", "extension de la mémoire"),
    ("measure.cooling", "refroidissement"),
    ("scope.every", "toutes les machines"),
    ("scope.role", "rôle {names}"),
    ("scope.roles", "rôles {names}"),
    ("scope.host", "machine {names}"),
    ("scope.hosts", "machines {names}"),
    ("scope.and", "{first} et {second}"),
    ("risk.accepted", "{text} — mesure refusée le {date} ({measure}) : un risque accepté"),
    ("risk.accepted_undated", "{text} — mesure refusée ({measure}) : un risque accepté"),
    ("risk.smart_grew", "disque {device} de {host} : les {attribute} sont passés de {from} à {to} ce mois-ci ; il s'use"),
    ("smart.reallocated_sectors", "secteurs réalloués"),
    ("smart.pending_sectors", "secteurs en attente"),
    ("risk.nvme_wear", "le disque {device} de {host} a consommé {percent} de sa durée de vie nominale"),
    ("risk.backup_stale", "la sauvegarde '{job}' de {host} a réussi pour la dernière fois {days} jours avant la fin du mois ({date})"),
    ("risk.restart", "{host} attend depuis {days} jours un redémarrage pour finir d'installer des mises à jour (depuis le {date})"),
    ("risk.disk", "le disque {mountpoint} de {host} ({used} occupés) sera plein dans environ {days} jours au rythme de ce mois, vers le {date}"),
    ("risk.os_ended", "{host} fonctionne sous {os}, plus pris en charge depuis le {date} : plus de mises à jour de sécurité"),
    ("risk.os_ending", "{host} fonctionne sous {os}, dont la prise en charge prend fin le {date} ; prévoyez la mise à niveau"),
    ("method.trends", "Les mois précédents sont calculés à partir de leur propre historique d'alertes avec le contrat de ce mois-ci."),
    ("money", "{amount} {currency}"),
    ("percent", "{value} %"),
    ("unit.min", "{n} min"),
    ("unit.h", "{n} h"),
    ("unit.d", "{n} j"),
    ("unit.gb", "{n} Go"),
    ("inventory.cpu", "{model} ({cores} cœurs)"),
    ("mail.subject", "{client} : rapport informatique de {month}"),
    ("mail.body", "Le rapport complet est joint ({file}) ; il s'ouvre dans tout navigateur et s'imprime sur A4 ou Letter."),
    ("month.1", "janvier"), ("month.2", "février"), ("month.3", "mars"), ("month.4", "avril"),
    ("month.5", "mai"), ("month.6", "juin"), ("month.7", "juillet"), ("month.8", "août"),
    ("month.9", "septembre"), ("month.10", "octobre"), ("month.11", "novembre"),
    ("month.12", "décembre"),
    ("mon.1", "janv."), ("mon.2", "févr."), ("mon.3", "mars"), ("mon.4", "avr."), ("mon.5", "mai"),
    ("mon.6", "juin"), ("mon.7", "juil."), ("mon.8", "août"), ("mon.9", "sept."),
    ("mon.10", "oct."), ("mon.11", "nov."), ("mon.12", "déc."),
    ("wd.1", "lun."), ("wd.2", "mar."), ("wd.3", "mer."), ("wd.4", "jeu."), ("wd.5", "ven."),
    ("wd.6", "sam."), ("wd.7", "dim."),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn placeholders(text: &str) -> BTreeSet<&str> {
        text.split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect()
    }

    #[test]
    fn every_key_is_in_every_language_once_with_the_same_placeholders() {
        let english_keys: BTreeSet<&str> = EN.iter().map(|(key, _)| *key).collect();
        assert_eq!(
            english_keys.len(),
            EN.len(),
            "a key twice in the English catalog"
        );
        for language in Language::ALL {
            let catalog = language.catalog();
            let keys: BTreeSet<&str> = catalog.iter().map(|(key, _)| *key).collect();
            assert_eq!(
                keys.len(),
                catalog.len(),
                "{}: a key twice",
                language.code()
            );
            assert_eq!(
                keys.symmetric_difference(&english_keys).collect::<Vec<_>>(),
                Vec::<&&str>::new(),
                "{}: keys differ from English",
                language.code()
            );
            for (key, text) in catalog {
                assert_eq!(
                    placeholders(text),
                    placeholders(english(key)),
                    "{}: {key}",
                    language.code()
                );
                assert!(
                    !text.trim().is_empty(),
                    "{}: {key} is empty",
                    language.code()
                );
            }
        }
    }

    fn english(key: &str) -> &'static str {
        EN.iter()
            .find(|(name, _)| *name == key)
            .map_or("", |(_, text)| text)
    }

    #[test]
    fn numbers_money_and_days_are_written_as_each_language_writes_them() {
        assert_eq!(Language::En.number(1234567.891, 2), "1,234,567.89");
        assert_eq!(Language::De.number(1234567.891, 2), "1.234.567,89");
        assert_eq!(Language::Fr.number(1234.5, 1), "1\u{202f}234,5");
        assert_eq!(Language::En.number(-0.001, 2), "0.00");
        assert_eq!(Language::En.money(Some("EUR"), 450.0), "EUR 450.00");
        assert_eq!(Language::De.money(Some("EUR"), 1350.0), "1.350,00 EUR");
        assert_eq!(Language::Fr.percent(0.99626), "99,63 %");
        assert_eq!(Language::De.duration(130 * 60_000), "2 Std. 10 Min.");
        assert_eq!(Language::Fr.duration(3 * 86_400_000), "3 j 0 h");
        let date = Date::new(2026, 12, 1).unwrap();
        assert_eq!(Language::En.day_of_month(date, true), "the 1st");
        assert_eq!(Language::De.day_of_month(date, false), "1. Dezember");
        assert_eq!(Language::Fr.day_of_month(date, false), "1er décembre");
        assert_eq!(Language::De.date(date), "01.12.2026");
        assert_eq!(Language::Fr.weekday_short(date.weekday()), "mar.");
    }

    #[test]
    fn an_unknown_language_is_matched_to_the_nearest_known_one() {
        assert_eq!(Language::from_code("de"), Some(Language::De));
        assert_eq!(Language::from_code("es"), None);
        assert_eq!(Language::nearest("deu"), "de");
        assert_eq!(Language::nearest("German"), "de");
        assert_eq!(Language::nearest("fra"), "fr");
        assert_eq!(Language::known(), "en, de, fr");
    }
}
