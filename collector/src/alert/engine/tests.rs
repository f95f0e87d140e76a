//! The engine end to end on hand-made samples: binding, lifecycle through the public API,
//! silence with sense, late samples, and a restart in the middle of a pending period.

use super::*;
use crate::alert::rule::RuleSet;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// A host's series by name and extra labels, with `host` and `client` filled in.
fn labels(host: &str, name: &str, extra: &[(&str, &str)]) -> Labels {
    let mut labels = Labels::from_pairs(extra.iter().copied());
    labels.insert("__name__", name);
    labels.insert("host", host);
    labels.insert("client", "acme");
    labels
}

/// The limit and used-bytes series of `/srv` on `host`.
fn srv_filesystem(host: &str) -> (Labels, Labels) {
    (
        labels(
            host,
            "system_filesystem_limit_bytes",
            &[("mountpoint", "/srv")],
        ),
        labels(
            host,
            "system_filesystem_usage_bytes",
            &[("mountpoint", "/srv"), ("state", "used")],
        ),
    )
}

fn sample(timestamp_ms: i64, value: f64) -> Sample {
    Sample {
        timestamp_ms,
        value,
    }
}

fn firing(transitions: &[Transition]) -> Vec<&Transition> {
    transitions
        .iter()
        .filter(|t| t.state == AlertState::Firing)
        .collect()
}

/// Runs a host that reports `service_up` for `service` every minute from `from` to `to`
/// (minutes), with the value given by `up`, evaluating every minute. Returns all transitions.
fn run_service(
    engine: &mut Engine,
    host: &str,
    minutes: std::ops::Range<i64>,
    up: impl Fn(i64) -> bool,
) -> Vec<Transition> {
    let series = labels(host, "service_up", &[("service", "nginx")]);
    let mut out = Vec::new();
    for minute in minutes {
        let now = minute * MINUTE;
        out.extend(engine.evaluate(now));
        out.extend(engine.observe(&series, sample(now, if up(minute) { 1.0 } else { 0.0 })));
    }
    out
}

#[test]
fn a_service_down_for_five_minutes_fires_once_and_resolves_when_it_is_back() {
    let mut engine = Engine::new(RuleSet::builtin());
    let out = run_service(&mut engine, "web-01", 0..60, |m| !(10..30).contains(&m));
    let fired = firing(&out);
    assert_eq!(fired.len(), 1, "{out:#?}");
    assert_eq!(fired[0].rule, "ServiceDown");
    assert_eq!(fired[0].ts_ms, 15 * MINUTE);
    assert_eq!(fired[0].labels.get("service"), Some("nginx"));
    assert_eq!(fired[0].category, Some(FailureKind::ServiceDown));
    let resolved: Vec<_> = out
        .iter()
        .filter(|t| t.state == AlertState::Resolved)
        .collect();
    assert_eq!(resolved.len(), 1);
    assert_eq!(
        resolved[0].ts_ms,
        32 * MINUTE,
        "resolves after its clear time"
    );
}

#[test]
fn a_restart_shorter_than_the_pending_time_raises_nothing() {
    let mut engine = Engine::new(RuleSet::builtin());
    let out = run_service(&mut engine, "web-01", 0..120, |m| !(50..53).contains(&m));
    assert!(out.is_empty(), "{out:#?}");
}

#[test]
fn a_service_that_keeps_crashing_warns_before_it_stays_down() {
    let mut engine = Engine::new(RuleSet::builtin());
    let crashes = [30, 120, 170, 200];
    let out = run_service(&mut engine, "print-01", 0..300, |m| {
        if m >= 230 {
            return false;
        }
        !crashes.iter().any(|&c| m >= c && m < c + 1)
    });
    let fired = firing(&out);
    assert_eq!(fired[0].rule, "ServiceFlapping");
    assert_eq!(fired[0].ts_ms, 170 * MINUTE);
    assert!(
        fired[0].summary.contains("crashed 3 times"),
        "{}",
        fired[0].summary
    );
    assert_eq!(fired[1].rule, "ServiceDown");
    assert_eq!(fired[1].ts_ms, 235 * MINUTE);
}

#[test]
fn each_mountpoint_is_its_own_alert_and_a_condition_that_holds_is_not_repeated() {
    let mut engine = Engine::new(RuleSet::builtin());
    let mut out = Vec::new();
    for minute in 0..30 {
        let now = minute * MINUTE;
        for mountpoint in ["/", "/var"] {
            let limit = labels(
                "db-01",
                "system_filesystem_limit_bytes",
                &[("mountpoint", mountpoint)],
            );
            out.extend(engine.observe(&limit, sample(now, 100.0)));
            let used = labels(
                "db-01",
                "system_filesystem_usage_bytes",
                &[("mountpoint", mountpoint), ("state", "used")],
            );
            out.extend(engine.observe(&used, sample(now, 98.0)));
        }
        out.extend(engine.evaluate(now));
    }
    let fired = firing(&out);
    assert_eq!(fired.len(), 2, "{out:#?}");
    let mut mountpoints: Vec<_> = fired
        .iter()
        .map(|t| t.labels.get("mountpoint").unwrap())
        .collect();
    mountpoints.sort();
    assert_eq!(mountpoints, ["/", "/var"]);
    assert!(fired.iter().all(|t| t.rule == "FilesystemAlmostFull"));
    assert!(
        fired[0].summary.contains("98 % full"),
        "{}",
        fired[0].summary
    );
    // The part label `state` does not tell instances apart.
    assert_eq!(fired[0].labels.get("state"), None);
}

#[test]
fn a_value_hovering_at_the_threshold_stays_one_alert() {
    let mut engine = Engine::new(RuleSet::builtin());
    let limit = labels(
        "db-01",
        "system_filesystem_limit_bytes",
        &[("mountpoint", "/")],
    );
    let used = labels(
        "db-01",
        "system_filesystem_usage_bytes",
        &[("mountpoint", "/"), ("state", "used")],
    );
    let mut out = Vec::new();
    for minute in 0..240 {
        let now = minute * MINUTE;
        out.extend(engine.observe(&limit, sample(now, 1000.0)));
        // 96.5 % to 97.5 %: above and below the 97 % trigger, never below the 95 % clear.
        let value = if minute % 20 < 10 { 975.0 } else { 965.0 };
        out.extend(engine.observe(&used, sample(now, value)));
    }
    let fired = firing(&out);
    assert_eq!(fired.len(), 1, "{out:#?}");
    assert!(out.iter().all(|t| t.state == AlertState::Firing));
}

#[test]
fn memory_is_judged_on_available_memory_divided_by_the_limit() {
    let mut engine = Engine::new(RuleSet::builtin());
    let available = labels(
        "app-01",
        "system_memory_usage_bytes",
        &[("state", "available")],
    );
    let used = labels("app-01", "system_memory_usage_bytes", &[("state", "used")]);
    let limit = labels("app-01", "system_memory_limit_bytes", &[]);
    let mut out = Vec::new();
    for minute in 0..120 {
        let now = minute * MINUTE;
        // "Used" includes cache and sits at 99 %: no alert. Available drops to 3 % at 60.
        out.extend(engine.observe(&used, sample(now, 99.0)));
        let free = if minute >= 60 { 3.0 } else { 40.0 };
        out.extend(engine.observe(&available, sample(now, free)));
        out.extend(engine.observe(&limit, sample(now, 100.0)));
        out.extend(engine.evaluate(now));
    }
    let fired = firing(&out);
    assert_eq!(fired.len(), 1, "{out:#?}");
    assert_eq!(fired[0].rule, "MemoryAvailableLow");
    assert_eq!(fired[0].ts_ms, 90 * MINUTE);
    assert!(fired[0].summary.contains("3 %") || fired[0].summary.contains("3.0 %"));
}

#[test]
fn smart_counters_rising_alert_once_per_device() {
    let mut engine = Engine::new(RuleSet::builtin());
    let mut out = Vec::new();
    for hour in 0..48 {
        let now = hour * HOUR;
        for (device, grows) in [("sda", true), ("sdb", false)] {
            // sda reallocates more sectors every three hours from 10:00; sdb has carried
            // four reallocated sectors for years.
            let reallocated = if grows && hour >= 10 {
                4.0 + ((hour - 10) / 3 + 1) as f64 * 8.0
            } else {
                4.0
            };
            out.extend(engine.observe(
                &labels(
                    "fs-01",
                    "disk_smart_reallocated_sectors",
                    &[("device", device)],
                ),
                sample(now, reallocated),
            ));
            out.extend(engine.observe(
                &labels("fs-01", "disk_smart_healthy", &[("device", device)]),
                sample(now, 1.0),
            ));
        }
        out.extend(engine.evaluate(now));
    }
    let fired = firing(&out);
    assert_eq!(fired[0].rule, "DiskSmartSectorsRising");
    assert_eq!(fired[0].severity, Severity::Warning);
    assert_eq!(
        fired[0].ts_ms,
        13 * HOUR,
        "the second incident: not a one-off"
    );
    assert_eq!(
        fired[1].severity,
        Severity::Critical,
        "recurring increases escalate"
    );
    assert!(fired.iter().all(|t| t.labels.get("device") == Some("sda")));
}

/// A host that reports one series every `interval` from `from` to `to`, except in `gaps`,
/// evaluated every minute.
fn run_host(
    engine: &mut Engine,
    host: &str,
    interval: i64,
    range: std::ops::Range<i64>,
    gaps: &[std::ops::Range<i64>],
) -> Vec<Transition> {
    let series = labels(host, "system_uptime_seconds", &[]);
    let mut out = Vec::new();
    let mut t = range.start;
    let mut next_evaluation = range.start;
    while t < range.end {
        while next_evaluation <= t {
            out.extend(engine.evaluate(next_evaluation));
            next_evaluation += MINUTE;
        }
        if !gaps.iter().any(|gap| gap.contains(&t)) {
            out.extend(engine.observe(&series, sample(t, (t / 1000) as f64)));
        }
        t += interval;
    }
    out
}

#[test]
fn short_gaps_of_a_flaky_uplink_are_not_silence() {
    let mut engine = Engine::new(RuleSet::builtin());
    let gaps = [
        10 * MINUTE..13 * MINUTE,
        40 * MINUTE..44 * MINUTE,
        70 * MINUTE..70 * MINUTE + 20_000,
    ];
    let out = run_host(&mut engine, "branch-02", 10_000, 0..2 * HOUR, &gaps);
    assert!(out.is_empty(), "{out:#?}");
}

#[test]
fn a_silent_host_is_reported_five_minutes_after_a_missed_sample_and_resolved_when_it_returns() {
    let mut engine = Engine::new(RuleSet::builtin());
    let outage = (2 * HOUR + 30_000)..(6 * HOUR);
    let out = run_host(
        &mut engine,
        "web-03",
        MINUTE,
        0..8 * HOUR,
        std::slice::from_ref(&outage),
    );
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(out[0].rule, "HostSilent");
    assert_eq!(out[0].state, AlertState::Firing);
    assert_eq!(
        out[0].ts_ms,
        2 * HOUR + 6 * MINUTE,
        "five minutes past the sample that was due"
    );
    assert_eq!(out[0].category, Some(FailureKind::HostDown));
    // The silence began with the last sample, six minutes before the engine could tell.
    assert_eq!(out[0].began_ms, 2 * HOUR);
    assert_eq!(out[1].state, AlertState::Resolved);
    assert_eq!(out[1].ts_ms, 6 * HOUR);
    assert_eq!(out[1].began_ms, 2 * HOUR);
}

#[test]
fn a_host_that_said_goodbye_is_offline_not_silent() {
    let mut engine = Engine::new(RuleSet::builtin());
    let mut out = run_host(&mut engine, "laptop-07", MINUTE, 0..HOUR, &[]);
    engine.host_goodbye("laptop-07", None);
    for minute in 60..600 {
        out.extend(engine.evaluate(minute * MINUTE));
    }
    assert!(out.is_empty(), "{out:#?}");
    // Back, and then silent without a goodbye: that is silence again.
    out.extend(run_host(
        &mut engine,
        "laptop-07",
        MINUTE,
        600 * MINUTE..610 * MINUTE,
        &[],
    ));
    for minute in 610..630 {
        out.extend(engine.evaluate(minute * MINUTE));
    }
    assert_eq!(firing(&out).len(), 1, "{out:#?}");
}

#[test]
fn many_hosts_of_one_client_falling_silent_together_are_one_site_alert() {
    let mut engine = Engine::new(RuleSet::builtin());
    let hosts = ["pc-01", "pc-02", "pc-03", "pc-04", "pc-05"];
    let mut out = Vec::new();
    for minute in 0..120 {
        let now = minute * MINUTE;
        out.extend(engine.evaluate(now));
        for (i, host) in hosts.iter().enumerate() {
            // All but pc-05 stop at minute 60.
            if minute < 60 || i == 4 {
                out.extend(engine.observe(
                    &labels(host, "system_uptime_seconds", &[]),
                    sample(now, 1.0),
                ));
            }
        }
    }
    let fired = firing(&out);
    assert_eq!(fired.len(), 1, "{out:#?}");
    assert_eq!(fired[0].rule, "SiteUnreachable");
    assert_eq!(fired[0].labels.get("client"), Some("acme"));
    assert!(
        fired[0].summary.contains("4 of 5 hosts"),
        "{}",
        fired[0].summary
    );
}

#[test]
fn after_a_restore_hosts_get_a_grace_period_before_they_are_called_silent() {
    let mut engine = Engine::new(RuleSet::builtin());
    run_host(&mut engine, "web-01", MINUTE, 0..HOUR, &[]);
    let snapshot = engine.snapshot();
    // The collector was down for an hour; the host reports again two minutes after the
    // restart, inside the grace period.
    let restart = 2 * HOUR;
    let mut engine = Engine::restore(RuleSet::builtin(), snapshot, restart);
    let mut out = Vec::new();
    for minute in 0..2 {
        out.extend(engine.evaluate(restart + minute * MINUTE));
    }
    out.extend(run_host(
        &mut engine,
        "web-01",
        MINUTE,
        restart + 2 * MINUTE..restart + HOUR,
        &[],
    ));
    assert!(out.is_empty(), "{out:#?}");
}

#[test]
fn late_samples_from_a_spool_do_not_open_alerts_for_conditions_already_over() {
    let mut engine = Engine::new(RuleSet::builtin());
    let series = labels("web-01", "service_up", &[("service", "nginx")]);
    let id = engine.series_id(
        "service_up",
        &Labels::from_pairs(series.iter().filter(|(n, _)| *n != "__name__")),
    );
    let mut out = Vec::new();
    // An outage from minute 10 to 30, delivered at minute 90 from the agent's spool.
    let arrival = 90 * MINUTE;
    for minute in 0..90 {
        let value = if (10..30).contains(&minute) { 0.0 } else { 1.0 };
        engine.observe_series(id, sample(minute * MINUTE, value), arrival, &mut out);
    }
    assert!(out.is_empty(), "{out:#?}");
}

#[test]
fn a_restart_in_the_middle_of_a_pending_period_neither_loses_nor_repeats_the_alert() {
    let series = labels("web-01", "service_up", &[("service", "nginx")]);
    let down_from = 10;
    let value = |minute: i64| if minute >= down_from { 0.0 } else { 1.0 };
    // Uninterrupted reference run.
    let mut reference = Engine::new(RuleSet::builtin());
    let mut expected = Vec::new();
    for minute in 0..40 {
        expected.extend(reference.observe(&series, sample(minute * MINUTE, value(minute))));
    }
    assert_eq!(firing(&expected).len(), 1);
    // Same samples with a restart at minute 12, two minutes into the five-minute pending
    // period: the snapshot goes through JSON as a store would keep it.
    let mut engine = Engine::new(RuleSet::builtin());
    let mut out = Vec::new();
    for minute in 0..13 {
        out.extend(engine.observe(&series, sample(minute * MINUTE, value(minute))));
    }
    let saved = serde_json::to_string(&engine.snapshot()).unwrap();
    drop(engine);
    let snapshot: Snapshot = serde_json::from_str(&saved).unwrap();
    let mut engine = Engine::restore(RuleSet::builtin(), snapshot, 13 * MINUTE);
    for minute in 13..40 {
        out.extend(engine.observe(&series, sample(minute * MINUTE, value(minute))));
    }
    assert_eq!(out, expected, "same transitions as without the restart");
    // And a restart while firing does not fire again.
    let saved = serde_json::to_string(&engine.snapshot()).unwrap();
    let mut engine = Engine::restore(
        RuleSet::builtin(),
        serde_json::from_str(&saved).unwrap(),
        40 * MINUTE,
    );
    let mut after = Vec::new();
    for minute in 40..60 {
        after.extend(engine.observe(&series, sample(minute * MINUTE, 0.0)));
    }
    assert!(after.is_empty(), "{after:#?}");
    assert_eq!(engine.open_alerts().len(), 1);
}

#[test]
fn a_forecast_pending_at_a_restart_fires_at_the_same_time_as_without_it() {
    // A disk that fills at 12 %/day after three flat days, sampled every minute.
    let (limit, used) = srv_filesystem("db-01");
    let onset = 3 * 24 * 60;
    let value = |minute: i64| {
        let wobble = [0.0, 0.2, -0.1, 0.15, -0.2, 0.05][(minute % 6) as usize];
        400.0 + (minute - onset).max(0) as f64 * 120.0 / 1440.0 + wobble
    };
    let run = |engine: &mut Engine, minutes: std::ops::Range<i64>| {
        let mut out = Vec::new();
        for minute in minutes {
            let now = minute * MINUTE;
            out.extend(engine.evaluate(now));
            out.extend(engine.observe(&limit, sample(now, 1000.0)));
            out.extend(engine.observe(&used, sample(now, value(minute))));
        }
        out
    };
    let end = onset + 36 * 60;
    let mut reference = Engine::new(RuleSet::builtin());
    let expected = run(&mut reference, 0..end);
    let fired = firing(&expected);
    assert_eq!(fired.len(), 1, "{expected:#?}");
    assert_eq!(fired[0].rule, "FilesystemFullForecast");
    // The forecast travels with the transition: time left within its interval, the value
    // against the limit, and a condition that began before the engine fired.
    let forecast = fired[0].details.forecast.expect("forecast details");
    assert!(forecast.soonest_ms <= forecast.time_left_ms, "{forecast:?}");
    assert!(forecast.time_left_ms <= forecast.latest_ms, "{forecast:?}");
    assert!(forecast.time_left_ms > 0 && forecast.time_left_ms < 7 * 24 * HOUR);
    assert_eq!(fired[0].details.threshold, Some(1.0));
    assert!(fired[0].began_ms < fired[0].ts_ms);
    let fired_minute = fired[0].ts_ms / MINUTE;
    // Restart while the forecast is pending, half-way between onset and firing.
    let restart = (onset + fired_minute) / 2;
    let mut engine = Engine::new(RuleSet::builtin());
    let mut out = run(&mut engine, 0..restart);
    let saved = serde_json::to_string(&engine.snapshot()).unwrap();
    let mut engine = Engine::restore(
        RuleSet::builtin(),
        serde_json::from_str(&saved).unwrap(),
        restart * MINUTE,
    );
    out.extend(run(&mut engine, restart..end));
    assert_eq!(firing(&out).len(), 1, "{out:#?}");
    assert_eq!(firing(&out)[0].ts_ms, fired[0].ts_ms);
}

#[test]
fn an_acknowledged_alert_shows_who_saw_it() {
    let mut engine = Engine::new(RuleSet::builtin());
    run_service(&mut engine, "web-01", 0..20, |m| m < 5);
    let service = Labels::from_pairs([("service", "nginx")]);
    assert!(engine.acknowledge("ServiceDown", "web-01", &service, "ann", 20 * MINUTE));
    assert!(!engine.acknowledge("ServiceDown", "web-02", &service, "ann", 20 * MINUTE));
    let open = engine.open_alerts();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].acknowledged_by.as_deref(), Some("ann"));
}

#[test]
fn a_memory_leak_is_forecast_on_available_memory_with_swap_in_the_summary() {
    let available = labels(
        "api-01",
        "system_memory_usage_bytes",
        &[("state", "available")],
    );
    let used = labels("api-01", "system_memory_usage_bytes", &[("state", "used")]);
    let limit = labels("api-01", "system_memory_limit_bytes", &[]);
    let swap = labels("api-01", "system_swap_usage_bytes", &[]);
    let onset = 3 * 24 * 60;
    let mut engine = Engine::new(RuleSet::builtin());
    let mut out = Vec::new();
    for minute in 0..onset + 24 * 60 {
        let now = minute * MINUTE;
        let wobble = [0.0, 0.4, -0.3, 0.2, -0.1][(minute % 5) as usize];
        let leaked = (minute - onset).max(0) as f64 * 1.0 / 60.0;
        out.extend(engine.evaluate(now));
        out.extend(engine.observe(&limit, sample(now, 100.0)));
        // "Used" counts the page cache and sits near full all along: it is not the signal.
        out.extend(engine.observe(&used, sample(now, 97.0)));
        out.extend(engine.observe(&available, sample(now, 60.0 - leaked + wobble)));
        out.extend(engine.observe(&swap, sample(now, 300.0 * 1024.0 * 1024.0)));
    }
    let fired = firing(&out);
    assert!(
        fired.iter().all(|t| t.rule == "MemoryExhaustionForecast"),
        "{out:#?}"
    );
    assert_eq!(fired[0].severity, Severity::Warning);
    assert!(fired[0].ts_ms > onset * MINUTE);
    assert!(
        fired[0].summary.contains("swap usage 300.0 MiB"),
        "{}",
        fired[0].summary
    );
}

#[test]
fn a_patch_reboot_with_missed_scrapes_and_reset_counters_raises_nothing() {
    let mut engine = Engine::new(RuleSet::builtin());
    let uptime = labels("app-01", "system_uptime_seconds", &[]);
    let service = labels("app-01", "service_up", &[("service", "app")]);
    let received = labels(
        "app-01",
        "system_network_io_bytes_total",
        &[("device", "eth0"), ("direction", "receive")],
    );
    let media = labels(
        "app-01",
        "disk_smart_media_errors_total",
        &[("device", "sda")],
    );
    let reboot = 600; // minute of the reboot: three scrapes missed, services back a minute later
    let mut out = Vec::new();
    for minute in 0..1200 {
        let now = minute * MINUTE;
        out.extend(engine.evaluate(now));
        if (reboot..reboot + 3).contains(&minute) {
            continue;
        }
        let booted = minute >= reboot + 3;
        let since_boot = if booted {
            minute - reboot - 3
        } else {
            minute + 100_000
        };
        out.extend(engine.observe(&uptime, sample(now, (since_boot * 60) as f64)));
        let up = if (reboot - 1..reboot + 4).contains(&minute) {
            0.0
        } else {
            1.0
        };
        out.extend(engine.observe(&service, sample(now, up)));
        out.extend(engine.observe(&received, sample(now, (since_boot * 1_000_000) as f64)));
        // The drive's counter is persistent, but the agent restarts from zero until it has
        // read it again.
        let errors = if minute == reboot + 3 { 0.0 } else { 2.0 };
        out.extend(engine.observe(&media, sample(now, errors)));
    }
    assert!(out.is_empty(), "{out:#?}");
}

#[test]
fn a_clients_forecast_horizons_replace_the_rules_own() {
    // The disk of the test above: about five days left when the fill starts, so the default
    // seven-day horizon warns within a day and a half; a contract asking to hear of it only
    // two days ahead stays quiet.
    let (limit, used) = srv_filesystem("db-01");
    let onset = 3 * 24 * 60;
    let run = |engine: &mut Engine| {
        let mut out = Vec::new();
        for minute in 0..onset + 36 * 60 {
            let now = minute * MINUTE;
            let value = 400.0 + (minute - onset).max(0) as f64 * 120.0 / 1440.0;
            out.extend(engine.evaluate(now));
            out.extend(engine.observe(&limit, sample(now, 1000.0)));
            out.extend(engine.observe(&used, sample(now, value)));
        }
        out
    };
    let day = std::time::Duration::from_secs(86_400);
    let forecast_fired = |out: &[Transition]| {
        firing(out)
            .iter()
            .any(|t| t.rule == "FilesystemFullForecast")
    };

    let mut other_client = Engine::new(RuleSet::builtin());
    other_client.set_forecast_horizons("other", Some((2 * day, day)));
    assert!(forecast_fired(&run(&mut other_client)));

    let mut near = Engine::new(RuleSet::builtin());
    near.set_forecast_horizons("acme", Some((2 * day, day)));
    assert!(!forecast_fired(&run(&mut near)));

    let mut everyone = Engine::new(RuleSet::builtin());
    everyone.set_forecast_horizons("", Some((2 * day, day)));
    assert!(!forecast_fired(&run(&mut everyone)));
}

#[test]
fn a_restart_left_pending_for_a_week_is_a_warning_and_clears_after_the_reboot() {
    let mut engine = Engine::new(RuleSet::builtin());
    let series = labels("pc-07", "system_reboot_required", &[]);
    let mut out = Vec::new();
    // An update asks for a restart on day 1; nobody restarts until day 10.
    for hour in 0..(12 * 24) {
        let now = hour * HOUR;
        let waiting = (24..240).contains(&hour);
        out.extend(engine.observe(&series, sample(now, if waiting { 1.0 } else { 0.0 })));
        out.extend(engine.evaluate(now));
    }
    let reboot: Vec<&Transition> = out.iter().filter(|t| t.rule == "RebootPending").collect();
    assert_eq!(reboot.len(), 2, "{reboot:?}");
    assert_eq!(reboot[0].state, AlertState::Firing);
    assert_eq!(reboot[0].severity, Severity::Warning);
    assert_eq!(
        reboot[0].ts_ms,
        (24 + 7 * 24) * HOUR,
        "after a week of waiting"
    );
    assert!(
        reboot[0].summary.contains("pc-07 has waited 7 d"),
        "{}",
        reboot[0].summary
    );
    assert_eq!(reboot[1].state, AlertState::Resolved);
    assert_eq!(reboot[1].ts_ms, 240 * HOUR);
}

#[test]
fn a_watched_log_pattern_that_matches_is_a_warning_and_recurring_matches_are_critical() {
    let mut engine = Engine::new(RuleSet::builtin());
    let io_errors = labels(
        "srv-01",
        "log_matches_total",
        &[("log", "kernel"), ("pattern", "io_error")],
    );
    let quiet = labels(
        "srv-01",
        "log_matches_total",
        &[("log", "kernel"), ("pattern", "oom")],
    );
    let mut out = Vec::new();
    for minute in 0..(10 * 60) {
        let now = minute * MINUTE;
        // Two I/O errors at 01:00, one at 04:00, two at 08:00.
        let count = match minute {
            m if m < 60 => 0.0,
            m if m < 240 => 2.0,
            m if m < 480 => 3.0,
            _ => 5.0,
        };
        out.extend(engine.observe(&io_errors, sample(now, count)));
        out.extend(engine.observe(&quiet, sample(now, 0.0)));
        out.extend(engine.evaluate(now));
    }
    let fired = firing(&out);
    assert!(
        fired.iter().all(|t| t.rule == "LogPatternSeen"),
        "{fired:?}"
    );
    assert!(fired
        .iter()
        .all(|t| t.labels.get("pattern") == Some("io_error")));
    assert_eq!(fired[0].severity, Severity::Warning);
    assert_eq!(fired[0].ts_ms, 60 * MINUTE, "the first match, at once");
    assert!(
        fired[0]
            .summary
            .starts_with("log kernel on srv-01: lines matching io_error, log matches +2"),
        "{}",
        fired[0].summary
    );
    assert_eq!(
        fired.last().unwrap().severity,
        Severity::Critical,
        "a third incident in a day escalates"
    );
}

#[test]
fn batches_an_agent_threw_away_are_an_alert() {
    let mut engine = Engine::new(RuleSet::builtin());
    let dropped = labels("pc-03", "vigil_agent_spool_dropped_batches_total", &[]);
    let mut out = Vec::new();
    for minute in 0..120 {
        let now = minute * MINUTE;
        let value = if minute < 30 { 0.0 } else { 412.0 };
        out.extend(engine.observe(&dropped, sample(now, value)));
        out.extend(engine.evaluate(now));
    }
    let fired = firing(&out);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].rule, "SpoolDroppedBatches");
    assert!(
        fired[0].summary.contains("spool dropped batches +412"),
        "{}",
        fired[0].summary
    );
}

#[test]
fn a_reboot_is_not_silence_unless_the_host_does_not_come_back() {
    let mut engine = Engine::new(RuleSet::builtin());
    let mut out = run_host(&mut engine, "srv-quick", MINUTE, 0..HOUR, &[]);
    out.extend(run_host(&mut engine, "srv-stuck", MINUTE, 0..HOUR, &[]));
    // Both go down for a patch reboot; one is back in 8 minutes, the other never.
    engine.host_goodbye("srv-quick", Some(HOUR));
    engine.host_goodbye("srv-stuck", Some(HOUR));
    out.extend(run_host(
        &mut engine,
        "srv-quick",
        MINUTE,
        HOUR + 8 * MINUTE..3 * HOUR,
        &[],
    ));
    let fired = firing(&out);
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert_eq!(fired[0].rule, "HostSilent");
    assert_eq!(fired[0].host, "srv-stuck");
    assert_eq!(fired[0].ts_ms, HOUR + 30 * MINUTE, "after the reboot grace");
    assert!(
        fired[0]
            .summary
            .contains("it went down for a reboot at 1970-01-01 01:00 UTC and has not come back"),
        "{}",
        fired[0].summary
    );
}
