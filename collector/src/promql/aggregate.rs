//! Aggregation operators over an instant vector, grouped `by` or `without` labels:
//! `sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`, `stdvar`, `quantile`, `topk`,
//! `bottomk`, with Prometheus 2.42's arithmetic (running mean for `avg` and `stddev`, NaN
//! replaced by any number for `min` and `max`). `count_values`, `limitk` and `limit_ratio`
//! are refused.

use promql_parser::parser::{AggregateExpr, LabelModifier};
use vigil_proto::model::Labels;

use super::eval::{Evaluator, Value, METRIC_NAME};
use super::functions::quantile;
use super::value::Sample;
use super::PromqlError;

const SUPPORTED: &[&str] = &[
    "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "quantile", "topk", "bottomk",
];

pub fn check_supported(aggregate: &AggregateExpr) -> Result<(), PromqlError> {
    let op = aggregate.op.to_string();
    if SUPPORTED.contains(&op.as_str()) {
        Ok(())
    } else {
        Err(PromqlError::unsupported(format!("aggregation {op}")))
    }
}

/// One group's running state.
struct Group {
    labels: Labels,
    value: f64,
    mean: f64,
    count: usize,
    members: Vec<Sample>,
}

pub fn eval(
    evaluator: &Evaluator,
    aggregate: &AggregateExpr,
    time_ms: i64,
) -> Result<Value, PromqlError> {
    let op = aggregate.op.to_string();
    let param = match &aggregate.param {
        Some(param) => Some(evaluator.eval_scalar(param, time_ms)?),
        None => None,
    };
    let samples = evaluator.eval_vector(&aggregate.expr, time_ms)?;
    let k = if op == "topk" || op == "bottomk" {
        let k = param.unwrap_or(0.0);
        if !(k.is_finite() && k.abs() < 9.2e18) {
            return Err(PromqlError::Execution(format!(
                "Scalar value {k} overflows int64"
            )));
        }
        let k = k as i64;
        if k < 1 {
            return Ok(Value::Vector(Vec::new()));
        }
        k as usize
    } else {
        0
    };
    let mut groups: Vec<Group> = Vec::new();
    let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    for sample in samples {
        let key = grouping_labels(&sample.labels, aggregate.modifier.as_ref());
        let Some(&at) = index.get(&key) else {
            index.insert(key.clone(), groups.len());
            let value = match op.as_str() {
                "stddev" | "stdvar" => 0.0,
                "group" => 1.0,
                _ => sample.value,
            };
            groups.push(Group {
                labels: key,
                value,
                mean: sample.value,
                count: 1,
                members: vec![sample],
            });
            continue;
        };
        let group = &mut groups[at];
        match op.as_str() {
            "sum" => group.value += sample.value,
            "avg" => {
                group.count += 1;
                let count = group.count as f64;
                if group.mean.is_infinite()
                    && ((sample.value.is_infinite() && (group.mean > 0.0) == (sample.value > 0.0))
                        || (!sample.value.is_infinite() && !sample.value.is_nan()))
                {
                    // The mean is already right: an infinity stays one.
                } else {
                    group.mean += sample.value / count - group.mean / count;
                }
            }
            "max" if group.value < sample.value || group.value.is_nan() => {
                group.value = sample.value;
            }
            "min" if group.value > sample.value || group.value.is_nan() => {
                group.value = sample.value;
            }
            "count" => group.count += 1,
            "stddev" | "stdvar" => {
                group.count += 1;
                let delta = sample.value - group.mean;
                group.mean += delta / group.count as f64;
                group.value += delta * (sample.value - group.mean);
            }
            "topk" | "bottomk" | "quantile" => group.members.push(sample),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for group in groups {
        let value = match op.as_str() {
            "avg" => group.mean,
            "count" => group.count as f64,
            "stdvar" => group.value / group.count as f64,
            "stddev" => (group.value / group.count as f64).sqrt(),
            "quantile" => quantile(
                param.unwrap_or(f64::NAN),
                group.members.iter().map(|s| s.value).collect(),
            ),
            "topk" | "bottomk" => {
                let mut members = group.members;
                let descending = op == "topk";
                // NaN ranks last either way, as Prometheus' heaps rank it.
                members.sort_by(|a, b| {
                    let order = match (a.value.is_nan(), b.value.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => return std::cmp::Ordering::Greater,
                        (false, true) => return std::cmp::Ordering::Less,
                        (false, false) => a
                            .value
                            .partial_cmp(&b.value)
                            .unwrap_or(std::cmp::Ordering::Equal),
                    };
                    if descending {
                        order.reverse()
                    } else {
                        order
                    }
                });
                members.truncate(k);
                out.extend(members);
                continue;
            }
            _ => group.value,
        };
        out.push(Sample {
            labels: group.labels.into(),
            value,
        });
    }
    Ok(Value::Vector(out))
}

/// The labels a sample's group carries: only the `by` labels, or all but the `without`
/// labels and the metric name, or none.
fn grouping_labels(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        Some(LabelModifier::Include(by)) => Labels::from_pairs(
            labels
                .iter()
                .filter(|(name, _)| by.labels.iter().any(|label| label == name)),
        ),
        Some(LabelModifier::Exclude(without)) => {
            Labels::from_pairs(labels.iter().filter(|(name, _)| {
                *name != METRIC_NAME && !without.labels.iter().any(|label| label == name)
            }))
        }
        None => Labels::new(),
    }
}
