//! `deploy/grafana/vigil-fleet.json`: every query parses as PromQL, names only metrics the
//! agents report (docs/METRICS.md), and reads its data source from the `datasource`
//! variable, so the dashboard works against a collector or a central store unchanged.

use std::path::Path;

use vigil_collector::alert::catalog::METRICS;

fn dashboard() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/vigil-fleet.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the dashboard is JSON")
}

/// Every (panel title, query) of the dashboard, with Grafana's variables given values.
fn queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$client", ".*")
                .replace("$host", ".*");
            found.push((panel["title"].as_str().unwrap().to_owned(), expr));
        }
    }
    found
}

#[test]
fn every_dashboard_query_parses_and_names_only_metrics_agents_report() {
    let dashboard = dashboard();
    let queries = queries(&dashboard);
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let known: Vec<&str> = METRICS.iter().map(|metric| metric.name).collect();
    for (title, expr) in &queries {
        vigil_collector::promql::parse(expr)
            .unwrap_or_else(|error| panic!("panel '{title}': {expr}: {error:?}"));
        // A metric name is a word followed by `{`.
        for (index, _) in expr.match_indices('{') {
            let name: String = expr[..index]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if !name.is_empty() && name != "by" && name != "on" && name != "ignoring" {
                assert!(
                    known.contains(&name.as_str()),
                    "panel '{title}' names '{name}', which no agent reports"
                );
            }
        }
    }
}

#[test]
fn every_panel_reads_the_data_source_variable() {
    let dashboard = dashboard();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(variables.iter().any(|v| v["name"] == "datasource"
        && v["type"] == "datasource"
        && v["query"] == "prometheus"));
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel '{}'",
            panel["title"]
        );
    }
}
