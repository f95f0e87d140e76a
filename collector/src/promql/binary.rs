//! Binary operators: arithmetic (`+ - * / % ^ atan2`), comparisons (filtering, or 0/1 with
//! `bool`) and the set operators (`and or unless`), between scalars and instant vectors.
//! Two vectors match one-to-one on all labels but the metric name, or as `on(…)` /
//! `ignoring(…)` say, or many-to-one with `group_left` / `group_right`, with Prometheus'
//! errors for ambiguous matches. Arithmetic drops the metric name, as does `bool`.

use std::collections::{HashMap, HashSet};

use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};
use vigil_proto::model::Labels;

use super::eval::{check_unique, drop_metric_name, Evaluator, Value, METRIC_NAME};
use super::value::Sample;
use super::PromqlError;

pub fn check_supported(binary: &BinaryExpr) -> Result<(), PromqlError> {
    if let Some(modifier) = &binary.modifier {
        if modifier.fill_values.lhs.is_some() || modifier.fill_values.rhs.is_some() {
            return Err(PromqlError::unsupported(
                "fill modifiers of binary operators",
            ));
        }
    }
    Ok(())
}

fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

fn is_set(op: &str) -> bool {
    matches!(op, "and" | "or" | "unless")
}

fn drops_metric_name(op: &str) -> bool {
    matches!(op, "+" | "-" | "*" | "/" | "^" | "%")
}

/// `lhs op rhs` for two numbers; a comparison gives whether it holds as the third value.
fn apply(op: &str, lhs: f64, rhs: f64) -> (f64, bool) {
    match op {
        "+" => (lhs + rhs, true),
        "-" => (lhs - rhs, true),
        "*" => (lhs * rhs, true),
        "/" => (lhs / rhs, true),
        "^" => (lhs.powf(rhs), true),
        "%" => (lhs % rhs, true),
        "atan2" => (lhs.atan2(rhs), true),
        "==" => (lhs, lhs == rhs),
        "!=" => (lhs, lhs != rhs),
        ">" => (lhs, lhs > rhs),
        "<" => (lhs, lhs < rhs),
        ">=" => (lhs, lhs >= rhs),
        "<=" => (lhs, lhs <= rhs),
        _ => (f64::NAN, false),
    }
}

pub fn eval(
    evaluator: &Evaluator,
    binary: &BinaryExpr,
    time_ms: i64,
) -> Result<Value, PromqlError> {
    let op = binary.op.to_string();
    let return_bool = binary.modifier.as_ref().is_some_and(|m| m.return_bool);
    let lhs = evaluator.eval(&binary.lhs, time_ms)?;
    let rhs = evaluator.eval(&binary.rhs, time_ms)?;
    match (lhs, rhs) {
        (Value::Scalar(lhs), Value::Scalar(rhs)) => {
            let (value, holds) = apply(&op, lhs, rhs);
            Ok(Value::Scalar(if is_comparison(&op) {
                if holds {
                    1.0
                } else {
                    0.0
                }
            } else {
                value
            }))
        }
        (Value::Vector(vector), Value::Scalar(scalar)) => {
            vector_scalar(&op, vector, scalar, false, return_bool)
        }
        (Value::Scalar(scalar), Value::Vector(vector)) => {
            vector_scalar(&op, vector, scalar, true, return_bool)
        }
        (Value::Vector(lhs), Value::Vector(rhs)) => {
            let matching = Matching::of(binary, &op);
            if is_set(&op) {
                Ok(Value::Vector(set_operation(&op, lhs, rhs, &matching)))
            } else {
                let out = vector_vector(&op, lhs, rhs, &matching, return_bool)?;
                check_unique(&out)?;
                Ok(Value::Vector(out))
            }
        }
        _ => Err(PromqlError::BadData(format!(
            "binary expression must contain only scalar and instant vector types: {op}"
        ))),
    }
}

fn vector_scalar(
    op: &str,
    vector: Vec<Sample>,
    scalar: f64,
    scalar_on_left: bool,
    return_bool: bool,
) -> Result<Value, PromqlError> {
    let mut out = Vec::with_capacity(vector.len());
    for sample in vector {
        let (lhs, rhs) = if scalar_on_left {
            (scalar, sample.value)
        } else {
            (sample.value, scalar)
        };
        let (mut value, mut keep) = apply(op, lhs, rhs);
        if is_comparison(op) && scalar_on_left {
            value = rhs;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            let labels = if drops_metric_name(op) || return_bool {
                drop_metric_name(&sample.labels)
            } else {
                sample.labels
            };
            out.push(Sample { labels, value });
        }
    }
    check_unique(&out)?;
    Ok(Value::Vector(out))
}

/// How two vectors' elements pair up.
struct Matching {
    cardinality: VectorMatchCardinality,
    /// `on(…)` when true, else `ignoring(…)`.
    on: bool,
    labels: Vec<String>,
}

impl Matching {
    fn of(binary: &BinaryExpr, op: &str) -> Matching {
        let (on, labels) = match binary.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
            Some(LabelModifier::Include(labels)) => (true, labels.labels.clone()),
            Some(LabelModifier::Exclude(labels)) => (false, labels.labels.clone()),
            None => (false, Vec::new()),
        };
        let cardinality = if is_set(op) {
            VectorMatchCardinality::ManyToMany
        } else {
            match binary.modifier.as_ref().map(|m| &m.card) {
                Some(VectorMatchCardinality::ManyToOne(include)) => {
                    VectorMatchCardinality::ManyToOne(include.clone())
                }
                Some(VectorMatchCardinality::OneToMany(include)) => {
                    VectorMatchCardinality::OneToMany(include.clone())
                }
                _ => VectorMatchCardinality::OneToOne,
            }
        };
        Matching {
            cardinality,
            on,
            labels,
        }
    }

    /// The labels two elements must share to match.
    fn signature(&self, labels: &Labels) -> Vec<(String, String)> {
        labels
            .iter()
            .filter(|(name, _)| {
                let listed = self.labels.iter().any(|label| label == name);
                if self.on {
                    listed
                } else {
                    !listed && *name != METRIC_NAME
                }
            })
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }

    fn include(&self) -> &[String] {
        match &self.cardinality {
            VectorMatchCardinality::ManyToOne(include)
            | VectorMatchCardinality::OneToMany(include) => &include.labels,
            _ => &[],
        }
    }
}

fn set_operation(op: &str, lhs: Vec<Sample>, rhs: Vec<Sample>, matching: &Matching) -> Vec<Sample> {
    match op {
        "and" => {
            if lhs.is_empty() || rhs.is_empty() {
                return Vec::new();
            }
            let right: HashSet<_> = rhs.iter().map(|s| matching.signature(&s.labels)).collect();
            lhs.into_iter()
                .filter(|s| right.contains(&matching.signature(&s.labels)))
                .collect()
        }
        "or" => {
            let left: HashSet<_> = lhs.iter().map(|s| matching.signature(&s.labels)).collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|s| !left.contains(&matching.signature(&s.labels))),
            );
            out
        }
        _ => {
            let right: HashSet<_> = rhs.iter().map(|s| matching.signature(&s.labels)).collect();
            lhs.into_iter()
                .filter(|s| !right.contains(&matching.signature(&s.labels)))
                .collect()
        }
    }
}

fn vector_vector(
    op: &str,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    matching: &Matching,
    return_bool: bool,
) -> Result<Vec<Sample>, PromqlError> {
    if lhs.is_empty() || rhs.is_empty() {
        return Ok(Vec::new());
    }
    let one_to_many = matches!(matching.cardinality, VectorMatchCardinality::OneToMany(_));
    // The "many" side is iterated; the "one" side is looked up by signature.
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_by_signature: HashMap<Vec<(String, String)>, &Sample> = HashMap::new();
    for sample in &one {
        let signature = matching.signature(&sample.labels);
        if let Some(previous) = one_by_signature.insert(signature, sample) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(PromqlError::Execution(format!(
                "found duplicate series for the match group on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                sample.labels, previous.labels
            )));
        }
    }
    let one_to_one = matches!(matching.cardinality, VectorMatchCardinality::OneToOne);
    let mut matched: HashMap<Vec<(String, String)>, HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for sample in &many {
        let signature = matching.signature(&sample.labels);
        let Some(other) = one_by_signature.get(&signature) else {
            continue;
        };
        let (left, right) = if one_to_many {
            (other.value, sample.value)
        } else {
            (sample.value, other.value)
        };
        let (mut value, keep) = apply(op, left, right);
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let mut labels =
            std::sync::Arc::new(result_labels(&sample.labels, &other.labels, op, matching));
        if return_bool {
            labels = drop_metric_name(&labels);
        }
        let inserted = matched.entry(signature).or_default();
        if one_to_one {
            if !inserted.is_empty() {
                return Err(PromqlError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .to_owned(),
                ));
            }
            inserted.insert(Labels::new());
        } else if !inserted.insert(Labels::clone(&labels)) {
            return Err(PromqlError::Execution(
                "multiple matches for labels: grouping labels must ensure unique matches"
                    .to_owned(),
            ));
        }
        out.push(Sample { labels, value });
    }
    Ok(out)
}

/// The labels of a result element: the "many" side's, without the metric name for
/// arithmetic, reduced to the `on` labels (or without the `ignoring` ones) one-to-one, with
/// the `group_left`/`group_right` labels copied from the "one" side.
fn result_labels(many: &Labels, one: &Labels, op: &str, matching: &Matching) -> Labels {
    let mut pairs: Vec<(String, String)> = many
        .iter()
        .filter(|(name, _)| !(drops_metric_name(op) && *name == METRIC_NAME))
        .filter(|(name, _)| {
            if !matches!(matching.cardinality, VectorMatchCardinality::OneToOne) {
                return true;
            }
            let listed = matching.labels.iter().any(|label| label == name);
            if matching.on {
                listed
            } else {
                !listed
            }
        })
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    for name in matching.include() {
        pairs.retain(|(existing, _)| existing != name);
        if let Some(value) = one.get(name) {
            if !value.is_empty() {
                pairs.push((name.clone(), value.to_owned()));
            }
        }
    }
    Labels::from_pairs(pairs)
}
