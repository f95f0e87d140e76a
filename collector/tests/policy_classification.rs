//! Client contracts deciding real alerts: the same alert under two clients' contracts,
//! maintenance holds and their release, declined measures, versions in force, business hours
//! across daylight-saving changes and holidays. Every instant is fixed; no test reads the clock.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::path::Path;
use std::time::Duration;
use vigil_collector::policy::{
    classify, AlertFacts, AlertKind, ContractSeverity, EngineSeverity, Policy, PolicyError,
    PolicyHistory, Route,
};

/// A dental practice in Berlin: server emergencies page at any hour.
const DENTAL: &str = r#"
client = "smile-dental"
time_zone = "Europe/Berlin"
after_hours = "emergency"

[hours]
weekdays = "08:00-12:30, 13:30-18:00"
friday = "08:00-14:00"
holidays = ["2025-12-24..2025-12-26"]

[response]
emergency = "1h"
critical = "4 business hours"

[[role]]
name = "server"
hosts = ["srv01"]

[[role]]
name = "imaging"
hosts = ["ws07"]

[[role]]
name = "workstation"
hosts = ["ws*"]

[[rule]]
name = "server unreachable"
kinds = ["host_down"]
roles = ["server"]
lasting = "5m"
severity = "emergency"

[[rule]]
name = "server disk full within a day"
kinds = ["disk_full"]
roles = ["server"]
forecast_within = "24h"
severity = "emergency"

[[maintenance]]
name = "server backup and reboot"
roles = ["server"]
every = "sunday 02:00"
lasts = "1h"

[[declined]]
measure = "backups"
roles = ["workstation"]
decided = "2024-09-02"
"#;

/// A bakery in New York: nothing pages after hours, disks filling are warnings.
const BAKERY: &str = r#"
client = "corner-bakery"
time_zone = "America/New_York"
after_hours = "none"

[hours]
weekdays = "07:00-15:00"

[[role]]
name = "server"
hosts = ["srv01"]

[[rule]]
name = "disk filling"
kinds = ["disk_full"]
severity = "warning"
"#;

fn policy(text: &str) -> Policy {
    Policy::parse(Path::new("test.toml"), text).unwrap_or_else(|error| panic!("{error}"))
}

/// An instant given as a zone's local time, e.g. `local("Europe/Berlin", "2025-06-14T23:00")`.
fn local(zone: &str, text: &str) -> Timestamp {
    TimeZone::get(zone)
        .unwrap()
        .to_timestamp(text.parse::<DateTime>().unwrap())
        .unwrap()
}

fn berlin(text: &str) -> Timestamp {
    local("Europe/Berlin", text)
}

fn alert(client: &str, host: &str, kind: AlertKind, firing_since: Timestamp) -> AlertFacts {
    AlertFacts::new(
        client,
        host,
        &format!("builtin_{kind}"),
        kind,
        EngineSeverity::Critical,
        firing_since,
    )
}

#[test]
fn the_same_alert_is_an_emergency_for_one_client_and_a_next_morning_warning_for_another() {
    // Saturday night: the server's disk will be full in 20 hours.
    let now = Timestamp::from_second(1_749_934_800).unwrap(); // 2025-06-14T21:00:00Z
    let disk_filling = |client: &str| AlertFacts {
        forecast_time_left: Some(Duration::from_secs(20 * 3600)),
        ..alert(client, "srv01", AlertKind::DiskFull, now)
    };

    let dental = classify(&policy(DENTAL), &disk_filling("smile-dental"), now).unwrap();
    assert_eq!(dental.contract_severity, ContractSeverity::Emergency);
    assert_eq!(dental.route, Route::Now);
    assert_eq!(
        dental.rule.as_deref(),
        Some("server disk full within a day")
    );
    assert_eq!(dental.host_role.as_deref(), Some("server"));
    assert_eq!(
        dental.response_due,
        now.checked_add(jiff::SignedDuration::from_hours(1))
            .unwrap()
    );

    let bakery = classify(&policy(BAKERY), &disk_filling("corner-bakery"), now).unwrap();
    assert_eq!(bakery.contract_severity, ContractSeverity::Warning);
    let monday_morning = local("America/New_York", "2025-06-16T07:00");
    assert_eq!(
        bakery.route,
        Route::NextBusinessMorning { at: monday_morning }
    );
    assert!(
        bakery
            .reasons
            .iter()
            .any(|reason| reason.contains("not covered after hours")),
        "{:?}",
        bakery.reasons
    );
}

#[test]
fn a_maintenance_window_holds_an_alert_and_releases_it_when_the_window_closes() {
    let dental = policy(DENTAL);
    // Sunday 15 June 2025, 02:00–03:00 Berlin: backup and reboot. The server goes silent at
    // 02:05 and is still silent at 02:30.
    let silent = alert(
        "smile-dental",
        "srv01",
        AlertKind::HostDown,
        berlin("2025-06-15T02:05"),
    );
    let during = classify(&dental, &silent, berlin("2025-06-15T02:30")).unwrap();
    assert_eq!(
        during.route,
        Route::HeldForMaintenance {
            until: berlin("2025-06-15T03:00")
        }
    );
    assert!(
        during
            .reasons
            .iter()
            .any(|reason| reason.contains("server backup and reboot")),
        "{:?}",
        during.reasons
    );

    // At 03:00 the window closes and the server is still silent: the alert goes out at once,
    // as the emergency it is (silent for more than five minutes), though it is Sunday night.
    let after = classify(&dental, &silent, berlin("2025-06-15T03:00")).unwrap();
    assert_eq!(after.route, Route::Now);
    assert_eq!(after.contract_severity, ContractSeverity::Emergency);
    assert_eq!(after.response_due, berlin("2025-06-15T04:00"));
}

#[test]
fn a_held_alert_is_due_counted_from_the_end_of_the_window() {
    let dental = policy(DENTAL);
    let silent = alert(
        "smile-dental",
        "srv01",
        AlertKind::HostDown,
        berlin("2025-06-15T01:50"),
    );
    let held = classify(&dental, &silent, berlin("2025-06-15T02:10")).unwrap();
    assert_eq!(held.contract_severity, ContractSeverity::Emergency);
    assert_eq!(held.response_due, berlin("2025-06-15T04:00"));
}

#[test]
fn a_window_does_not_hold_alerts_of_hosts_outside_it() {
    let dental = policy(DENTAL);
    let workstation = alert(
        "smile-dental",
        "ws03",
        AlertKind::HostDown,
        berlin("2025-06-15T02:05"),
    );
    let classification = classify(&dental, &workstation, berlin("2025-06-15T02:30")).unwrap();
    assert!(
        !matches!(classification.route, Route::HeldForMaintenance { .. }),
        "{classification:?}"
    );
}

#[test]
fn declined_backups_make_stale_backup_alerts_a_notice_and_record_the_accepted_risk() {
    let dental = policy(DENTAL);
    let now = berlin("2025-06-11T10:00");
    let on_workstation = alert("smile-dental", "ws03", AlertKind::BackupStale, now);
    let declined = classify(&dental, &on_workstation, now).unwrap();
    assert_eq!(declined.contract_severity, ContractSeverity::Notice);
    assert_eq!(declined.accepted_risk.as_deref(), Some("backups"));
    assert!(
        declined
            .reasons
            .iter()
            .any(|reason| reason.contains("declined backups on 2024-09-02")),
        "{:?}",
        declined.reasons
    );

    // The server's backups were not declined: the engine's critical stands.
    let on_server = alert("smile-dental", "srv01", AlertKind::BackupStale, now);
    let kept = classify(&dental, &on_server, now).unwrap();
    assert_eq!(kept.contract_severity, ContractSeverity::Critical);
    assert_eq!(kept.accepted_risk, None);
}

#[test]
fn a_declined_measure_caps_even_a_rule_that_says_emergency() {
    let text = format!(
        "{DENTAL}\n[[rule]]\nname = \"any stale backup\"\nkinds = [\"backup_stale\"]\nseverity = \"emergency\"\n"
    );
    let now = berlin("2025-06-11T10:00");
    let classification = classify(
        &policy(&text),
        &alert("smile-dental", "ws05", AlertKind::BackupStale, now),
        now,
    )
    .unwrap();
    assert_eq!(classification.rule.as_deref(), Some("any stale backup"));
    assert_eq!(classification.contract_severity, ContractSeverity::Notice);
}

#[test]
fn editing_a_policy_leaves_alerts_that_fired_before_classified_by_the_earlier_version() {
    let mut history = PolicyHistory::new("corner-bakery");
    history
        .append("owner", "2025-01-01T00:00:00Z".parse().unwrap(), BAKERY)
        .unwrap();
    let before_edit: Timestamp = "2025-02-03T16:00:00Z".parse().unwrap();
    let disk_filling = AlertFacts {
        forecast_time_left: Some(Duration::from_secs(6 * 3600)),
        ..alert("corner-bakery", "srv01", AlertKind::DiskFull, before_edit)
    };
    let at_the_time = history.classify(&disk_filling, before_edit).unwrap();

    // In March the owner makes filling disks emergencies with after-hours coverage.
    let edited = BAKERY
        .replace("after_hours = \"none\"", "after_hours = \"emergency\"")
        .replace("severity = \"warning\"", "severity = \"emergency\"");
    history
        .append("tech", "2025-03-01T00:00:00Z".parse().unwrap(), &edited)
        .unwrap();

    // The February alert, looked at again in March, is still what version 1 said.
    let looked_at_later = history
        .classify(&disk_filling, "2025-03-02T12:00:00Z".parse().unwrap())
        .unwrap();
    assert_eq!(at_the_time.policy_version.version, 1);
    assert_eq!(looked_at_later.policy_version, at_the_time.policy_version);
    assert_eq!(looked_at_later.contract_severity, ContractSeverity::Warning);

    // The same alert firing after the edit is an emergency under version 2.
    let after_edit: Timestamp = "2025-03-02T12:00:00Z".parse().unwrap();
    let new_alert = AlertFacts {
        firing_since: after_edit,
        condition_since: after_edit,
        ..disk_filling.clone()
    };
    let classified_now = history.classify(&new_alert, after_edit).unwrap();
    assert_eq!(classified_now.policy_version.version, 2);
    assert_eq!(
        classified_now.contract_severity,
        ContractSeverity::Emergency
    );
    assert_ne!(
        classified_now.policy_version.digest,
        at_the_time.policy_version.digest
    );
}

#[test]
fn response_due_counts_business_hours_across_the_spring_change_in_berlin() {
    // Clocks spring forward on Sunday 30 March 2025. A critical alert at 16:00 on a Monday-
    // to-Friday 08:00–17:00 contract: one hour on Friday, three on Monday, due at 11:00 CEST.
    let text = "client = \"office\"\ntime_zone = \"Europe/Berlin\"\n[hours]\nweekdays = \"08:00-17:00\"\n[response]\ncritical = \"4 business hours\"\n";
    let now = berlin("2025-03-28T16:00");
    let classification = classify(
        &policy(text),
        &alert("office", "pc1", AlertKind::SmartFailure, now),
        now,
    )
    .unwrap();
    assert_eq!(classification.route, Route::BusinessHours);
    assert_eq!(classification.response_due, berlin("2025-03-31T11:00"));
    assert_eq!(
        classification.response_due.to_string(),
        "2025-03-31T09:00:00Z"
    );
}

#[test]
fn response_due_counts_business_hours_across_the_autumn_change_in_berlin() {
    // Clocks fall back on Sunday 26 October 2025.
    let text =
        "client = \"office\"\ntime_zone = \"Europe/Berlin\"\n[hours]\nweekdays = \"08:00-17:00\"\n";
    let now = berlin("2025-10-24T16:00");
    let classification = classify(
        &policy(text),
        &alert("office", "pc1", AlertKind::SmartFailure, now),
        now,
    )
    .unwrap();
    assert_eq!(classification.response_due, berlin("2025-10-27T11:00"));
    assert_eq!(
        classification.response_due.to_string(),
        "2025-10-27T10:00:00Z"
    );
}

#[test]
fn response_due_counts_business_hours_across_the_spring_change_in_new_york() {
    // Clocks spring forward on Sunday 9 March 2025; 4 business hours from Friday 14:00 on a
    // 07:00–15:00 week: one on Friday, three on Monday.
    let now = local("America/New_York", "2025-03-07T14:00");
    let classification = classify(
        &policy(BAKERY),
        &alert("corner-bakery", "srv01", AlertKind::ServiceDown, now),
        now,
    )
    .unwrap();
    assert_eq!(classification.contract_severity, ContractSeverity::Critical);
    assert_eq!(
        classification.response_due,
        local("America/New_York", "2025-03-10T10:00")
    );
    assert_eq!(
        classification.response_due.to_string(),
        "2025-03-10T14:00:00Z"
    );
}

#[test]
fn a_warning_after_closing_waits_for_the_next_opening_after_the_weekend() {
    // Friday 14:30 in Berlin, after the dental practice's Friday close at 14:00.
    let now = berlin("2025-06-13T14:30");
    let mut facts = alert("smile-dental", "srv01", AlertKind::Saturation, now);
    facts.severity = EngineSeverity::Warning;
    let classification = classify(&policy(DENTAL), &facts, now).unwrap();
    assert_eq!(classification.contract_severity, ContractSeverity::Warning);
    let monday = berlin("2025-06-16T08:00");
    assert_eq!(
        classification.route,
        Route::NextBusinessMorning { at: monday }
    );
}

#[test]
fn the_lunch_closure_holds_non_emergencies_until_the_afternoon_opening() {
    let now = berlin("2025-06-11T12:45");
    let classification = classify(
        &policy(DENTAL),
        &alert("smile-dental", "srv01", AlertKind::SmartFailure, now),
        now,
    )
    .unwrap();
    assert_eq!(
        classification.route,
        Route::NextBusinessMorning {
            at: berlin("2025-06-11T13:30")
        }
    );
}

#[test]
fn holidays_are_outside_business_hours_and_stop_the_response_clock() {
    // Christmas Eve 2025 is a Wednesday; the practice is closed until Monday the 29th.
    let now = berlin("2025-12-24T10:00");
    let classification = classify(
        &policy(DENTAL),
        &alert("smile-dental", "srv01", AlertKind::SmartFailure, now),
        now,
    )
    .unwrap();
    assert_eq!(classification.contract_severity, ContractSeverity::Critical);
    assert_eq!(
        classification.route,
        Route::NextBusinessMorning {
            at: berlin("2025-12-29T08:00")
        }
    );
    // Four business hours from the Monday opening: 08:00–12:00.
    assert_eq!(classification.response_due, berlin("2025-12-29T12:00"));
}

#[test]
fn a_server_silent_for_less_than_five_minutes_is_not_yet_an_emergency_and_says_when_it_will_be() {
    let dental = policy(DENTAL);
    let silent = alert(
        "smile-dental",
        "srv01",
        AlertKind::HostDown,
        berlin("2025-06-11T10:00"),
    );
    let early = classify(&dental, &silent, berlin("2025-06-11T10:02")).unwrap();
    assert_eq!(early.contract_severity, ContractSeverity::Critical);
    assert_eq!(early.reclassify_at, Some(berlin("2025-06-11T10:05")));
    let later = classify(&dental, &silent, berlin("2025-06-11T10:05")).unwrap();
    assert_eq!(later.contract_severity, ContractSeverity::Emergency);
    assert_eq!(later.route, Route::Now);
    assert_eq!(later.reclassify_at, None);
}

#[test]
fn lasting_counts_from_when_the_silence_began_not_from_when_the_engine_fired() {
    let dental = policy(DENTAL);
    // The last sample came at 10:00; the engine could tell it was silence at 10:04.
    let silent = AlertFacts {
        condition_since: berlin("2025-06-11T10:00"),
        ..alert(
            "smile-dental",
            "srv01",
            AlertKind::HostDown,
            berlin("2025-06-11T10:04"),
        )
    };
    let fired = classify(&dental, &silent, berlin("2025-06-11T10:04")).unwrap();
    assert_eq!(fired.contract_severity, ContractSeverity::Critical);
    assert_eq!(fired.reclassify_at, Some(berlin("2025-06-11T10:05")));
    let five_minutes = classify(&dental, &silent, berlin("2025-06-11T10:05")).unwrap();
    assert_eq!(five_minutes.contract_severity, ContractSeverity::Emergency);
}

#[test]
fn a_forecast_not_yet_within_the_contracts_window_says_when_it_will_be() {
    let dental = policy(DENTAL);
    let at_noon = berlin("2025-06-11T12:00");
    let filling = AlertFacts {
        forecast_time_left: Some(Duration::from_secs(30 * 3600)),
        ..alert("smile-dental", "srv01", AlertKind::DiskFull, at_noon)
    };
    let now = classify(&dental, &filling, at_noon).unwrap();
    assert_eq!(now.contract_severity, ContractSeverity::Critical);
    assert_eq!(now.reclassify_at, Some(berlin("2025-06-11T18:00")));
    // Six hours later the same forecast, shrunk at its rate, is within a day.
    let later = AlertFacts {
        forecast_time_left: Some(Duration::from_secs(24 * 3600)),
        ..filling
    };
    let then = classify(&dental, &later, berlin("2025-06-11T18:00")).unwrap();
    assert_eq!(then.contract_severity, ContractSeverity::Emergency);
    assert_eq!(then.rule.as_deref(), Some("server disk full within a day"));
}

#[test]
fn a_host_listed_by_name_takes_that_role_over_a_glob() {
    let dental = policy(DENTAL);
    assert_eq!(dental.role_of("ws07").unwrap().0.name, "imaging");
    assert_eq!(dental.role_of("WS03").unwrap().0.name, "workstation");
    assert!(dental.role_of("laptop-9").is_none());
}

#[test]
fn an_alert_is_refused_by_another_clients_contract() {
    let now = berlin("2025-06-11T10:00");
    let error = classify(
        &policy(DENTAL),
        &alert("corner-bakery", "srv01", AlertKind::HostDown, now),
        now,
    )
    .unwrap_err();
    assert!(matches!(error, PolicyError::WrongClient { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("belongs to client 'corner-bakery'"),
        "{error}"
    );
}

#[test]
fn the_example_dental_contract_makes_a_failing_server_disk_an_emergency_on_a_sunday() {
    let text = include_str!("../../deploy/policies/dental-practice.toml");
    let dental = Policy::parse(Path::new("deploy/policies/dental-practice.toml"), text).unwrap();
    let now = berlin("2025-06-15T11:00");
    let failing = alert("smile-dental", "DENTAL-SRV01", AlertKind::SmartFailure, now);
    let classification = classify(&dental, &failing, now).unwrap();
    assert_eq!(
        classification.contract_severity,
        ContractSeverity::Emergency
    );
    assert_eq!(classification.route, Route::Now);
    assert_eq!(classification.host_role.as_deref(), Some("server"));

    // The same failure on a treatment-room PC is a warning the next morning.
    let on_workstation = alert("smile-dental", "dental-ws04", AlertKind::SmartFailure, now);
    let classification = classify(&dental, &on_workstation, now).unwrap();
    assert_eq!(classification.contract_severity, ContractSeverity::Warning);
    assert_eq!(
        classification.accepted_risk.as_deref(),
        Some("disk_replacement")
    );
    assert_eq!(
        classification.route,
        Route::NextBusinessMorning {
            at: berlin("2025-06-16T08:00")
        }
    );
}
