//! Policy files as the MSP owner writes them: the example contract is accepted, and every bad
//! file in `tests/policy_cases/` is refused with its file, the line of the offending value and
//! the fix. Each case opens with `# must say: <phrase>` and `# at: <text of the bad line>`
//! (or `start of file` for a problem with the whole file).

use std::path::{Path, PathBuf};
use vigil_collector::policy::{AfterHours, ContractSeverity, Measure, Policy, PolicyError};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy_cases")
}

/// The value of a `# key: value` header line.
fn header<'t>(text: &'t str, key: &str) -> &'t str {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("# {key}: ")))
        .unwrap_or_else(|| panic!("case lacks a '# {key}:' line"))
}

#[test]
fn every_bad_policy_file_is_refused_with_file_line_and_fix() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 20, "only {} cases", paths.len());
    let mut failures = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).unwrap();
        let must_say = header(&text, "must say");
        let at = header(&text, "at");
        // `start of file`: a problem with the file as a whole, such as a missing key.
        let line = if at == "start of file" {
            1
        } else {
            text.lines()
                .skip(2)
                .position(|line| line.contains(at))
                .map(|index| index + 3)
                .unwrap_or_else(|| panic!("{}: '# at:' text not in the file", path.display()))
        };
        let place = format!("config {}:{line}:", path.display());
        match Policy::parse(path, &text) {
            Ok(_) => failures.push(format!("{}: accepted", path.display())),
            Err(error) => {
                let message = error.to_string();
                let problem = message.lines().find(|problem| problem.contains(must_say));
                match problem {
                    Some(problem) if problem.starts_with(&place) => {}
                    Some(problem) => failures.push(format!(
                        "{}: says the right thing at the wrong place (want {place}): {problem}",
                        path.display()
                    )),
                    None => failures.push(format!(
                        "{}: does not say {must_say:?}: {message}",
                        path.display()
                    )),
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_problem_in_a_file_is_reported_at_once_one_line_each() {
    let text = r#"client = "acme"
time_zone = "Mars/Olympus_Mons"

[hours]
weekdays = "08:00-17:00"
saturday = "9-12"

[[rule]]
name = "disk"
kinds = ["disk-full"]
roles = ["servers"]
severity = "urgent"
"#;
    let error = Policy::parse(Path::new("acme.toml"), text).unwrap_err();
    let PolicyError::Invalid(invalid) = &error else {
        panic!("{error}")
    };
    let lines: Vec<&str> = invalid.problems.iter().map(String::as_str).collect();
    assert_eq!(lines.len(), 5, "{lines:#?}");
    for (problem, line) in lines.iter().zip([2, 6, 10, 11, 12]) {
        assert!(
            problem.starts_with(&format!("config acme.toml:{line}:")),
            "{problem}"
        );
        assert!(!problem.contains('\n'));
    }
}

#[test]
fn the_example_dental_practice_contract_is_accepted() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/policies/dental-practice.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let policy = Policy::parse(&path, &text).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(policy.client(), "smile-dental");
    assert_eq!(
        policy.after_hours,
        AfterHours::From(ContractSeverity::Emergency)
    );
    let roles: Vec<&str> = policy.roles.iter().map(|role| role.name.as_str()).collect();
    assert_eq!(roles, ["server", "imaging", "reception", "workstation"]);
    // One server and twelve workstations, each with exactly the role the file means.
    assert_eq!(policy.role_of("dental-srv01").unwrap().0.name, "server");
    let workstation_roles: Vec<&str> = (1..=12)
        .map(|n| {
            policy
                .role_of(&format!("dental-ws{n:02}"))
                .unwrap()
                .0
                .name
                .as_str()
        })
        .collect();
    assert_eq!(
        workstation_roles
            .iter()
            .filter(|&&r| r == "reception")
            .count(),
        2
    );
    assert_eq!(
        workstation_roles
            .iter()
            .filter(|&&r| r == "imaging")
            .count(),
        1
    );
    assert_eq!(
        workstation_roles
            .iter()
            .filter(|&&r| r == "workstation")
            .count(),
        9
    );
    assert_eq!(policy.declined[0].measure, Measure::Backups);
    assert_eq!(policy.maintenance.len(), 3);
    assert_eq!(
        policy.cost_of_downtime(std::time::Duration::from_secs(90 * 60)),
        Some(675.0)
    );
    let summary = policy.summary();
    assert!(
        summary.contains("emergency server unreachable"),
        "{summary}"
    );
    assert!(
        summary.contains("declined on 2024-09-02: backups"),
        "{summary}"
    );
}

#[test]
fn forecast_horizons_are_read_and_a_critical_one_beyond_the_warning_is_refused() {
    use std::time::Duration;
    use vigil_collector::policy::Policy;
    let base = "client = \"acme\"\ntime_zone = \"UTC\"\n[hours]\nweekdays = \"08:00-17:00\"\n";
    let path = std::path::Path::new("acme.toml");
    let policy = Policy::parse(
        path,
        &format!("{base}[forecast]\nwarn_within = \"14d\"\ncritical_within = \"3d\"\n"),
    )
    .unwrap();
    let horizons = policy.forecast.unwrap();
    assert_eq!(horizons.warn, Duration::from_secs(14 * 86_400));
    assert_eq!(horizons.critical, Duration::from_secs(3 * 86_400));
    assert!(Policy::parse(path, base).unwrap().forecast.is_none());

    let error = Policy::parse(
        path,
        &format!("{base}[forecast]\nwarn_within = \"1d\"\ncritical_within = \"3d\"\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("acme.toml:5"), "{error}");
    assert!(error.contains("critical_within"), "{error}");
}

#[test]
fn a_contract_may_name_a_rule_the_rules_file_adds_and_only_when_it_is_configured() {
    let text = "client = \"acme\"\ntime_zone = \"Europe/Berlin\"\n\
                [hours]\nweekdays = \"08:00-17:00\"\n\
                [[rule]]\nname = \"scanner\"\nalert_rules = [\"ScannerOffline\"]\nseverity = \"critical\"\n";
    let path = Path::new("acme.toml");
    let refused = Policy::parse(path, text).unwrap_err().to_string();
    assert!(
        refused.contains("alert_rules names \"ScannerOffline\", which is not a rule"),
        "{refused}"
    );
    assert!(refused.contains("[alerts] rules"), "{refused}");
    let configured = vec!["ScannerOffline".to_string()];
    let policy = Policy::parse_with_rules(path, text, &configured).expect("a configured rule");
    assert_eq!(policy.client(), "acme");
}
