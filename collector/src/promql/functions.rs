//! PromQL functions, computed as Prometheus 2.42 computes them (`promql/functions.go`):
//! `rate`/`increase`/`delta` with its extrapolation to the window's edges, `irate`/`idelta`,
//! `deriv` and `predict_linear` by least squares, the `*_over_time` family with Kahan
//! summation, and the element-wise and label functions. A function not listed in
//! [`check_supported`] is refused by name.

use promql_parser::parser::{Call, Expr};
use vigil_proto::model::{Labels, Sample as StoredSample};

use super::eval::{check_unique, drop_metric_name, Evaluator, Value, METRIC_NAME};
use super::value::Sample;
use super::PromqlError;

/// Functions whose argument is a range selector.
const RANGE_FUNCTIONS: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "predict_linear",
    "changes",
    "resets",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "present_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "quantile_over_time",
    "absent_over_time",
];

/// Functions of instant vectors and scalars.
const INSTANT_FUNCTIONS: &[&str] = &[
    "abs",
    "ceil",
    "floor",
    "round",
    "exp",
    "sqrt",
    "ln",
    "log2",
    "log10",
    "sgn",
    "clamp",
    "clamp_min",
    "clamp_max",
    "time",
    "vector",
    "scalar",
    "absent",
    "label_replace",
    "label_join",
    "sort",
    "sort_desc",
    "timestamp",
    "pi",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "tanh",
    "asinh",
    "acosh",
    "atanh",
    "deg",
    "rad",
    "minute",
    "hour",
    "day_of_week",
    "day_of_month",
    "day_of_year",
    "days_in_month",
    "month",
    "year",
];

/// Refuses a function Vigil does not evaluate, or a range function given a subquery.
pub fn check_supported(call: &Call) -> Result<(), PromqlError> {
    let name = call.func.name;
    if RANGE_FUNCTIONS.contains(&name) {
        let range_arg = call
            .args
            .args
            .iter()
            .map(|arg| unwrap_parens(arg))
            .find(|arg| matches!(arg, Expr::MatrixSelector(_) | Expr::Subquery(_)));
        if let Some(Expr::Subquery(_)) = range_arg {
            return Err(PromqlError::unsupported(format!("subquery in {name}()")));
        }
        return Ok(());
    }
    if INSTANT_FUNCTIONS.contains(&name) {
        return Ok(());
    }
    Err(PromqlError::unsupported(format!("function {name}()")))
}

fn unwrap_parens(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(paren) => unwrap_parens(&paren.expr),
        other => other,
    }
}

pub fn eval(evaluator: &Evaluator, call: &Call, time_ms: i64) -> Result<Value, PromqlError> {
    let name = call.func.name;
    let args: Vec<&Expr> = call.args.args.iter().map(|arg| arg.as_ref()).collect();
    if RANGE_FUNCTIONS.contains(&name) {
        return range_function(evaluator, name, &args, time_ms);
    }
    let value = match name {
        "time" => Value::Scalar(time_ms as f64 / 1000.0),
        "vector" => Value::Vector(vec![Sample {
            labels: Labels::new().into(),
            value: evaluator.eval_scalar(args[0], time_ms)?,
        }]),
        "scalar" => {
            let samples = evaluator.eval_vector(args[0], time_ms)?;
            Value::Scalar(match samples.as_slice() {
                [one] => one.value,
                _ => f64::NAN,
            })
        }
        "absent" => {
            let samples = evaluator.eval_vector(args[0], time_ms)?;
            if samples.is_empty() {
                Value::Vector(vec![Sample {
                    labels: absent_labels(args[0]).into(),
                    value: 1.0,
                }])
            } else {
                Value::Vector(Vec::new())
            }
        }
        "label_replace" => Value::Vector(label_replace(evaluator, &args, time_ms)?),
        "label_join" => Value::Vector(label_join(evaluator, &args, time_ms)?),
        "sort" | "sort_desc" => {
            let mut samples = evaluator.eval_vector(args[0], time_ms)?;
            // NaN first either way, as Prometheus' sort does.
            samples.sort_by(|a, b| match (a.value.is_nan(), b.value.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Less,
                (false, true) => std::cmp::Ordering::Greater,
                (false, false) => {
                    let order = a
                        .value
                        .partial_cmp(&b.value)
                        .unwrap_or(std::cmp::Ordering::Equal);
                    if name == "sort" {
                        order
                    } else {
                        order.reverse()
                    }
                }
            });
            Value::Vector(samples)
        }
        "timestamp" => Value::Vector(timestamp(evaluator, args[0], time_ms)?),
        "pi" => Value::Scalar(std::f64::consts::PI),
        "sin" => element_wise(evaluator, args[0], time_ms, f64::sin)?,
        "cos" => element_wise(evaluator, args[0], time_ms, f64::cos)?,
        "tan" => element_wise(evaluator, args[0], time_ms, f64::tan)?,
        "asin" => element_wise(evaluator, args[0], time_ms, f64::asin)?,
        "acos" => element_wise(evaluator, args[0], time_ms, f64::acos)?,
        "atan" => element_wise(evaluator, args[0], time_ms, f64::atan)?,
        "sinh" => element_wise(evaluator, args[0], time_ms, f64::sinh)?,
        "cosh" => element_wise(evaluator, args[0], time_ms, f64::cosh)?,
        "tanh" => element_wise(evaluator, args[0], time_ms, f64::tanh)?,
        "asinh" => element_wise(evaluator, args[0], time_ms, f64::asinh)?,
        "acosh" => element_wise(evaluator, args[0], time_ms, f64::acosh)?,
        "atanh" => element_wise(evaluator, args[0], time_ms, f64::atanh)?,
        "deg" => element_wise(evaluator, args[0], time_ms, |v| {
            v * 180.0 / std::f64::consts::PI
        })?,
        "rad" => element_wise(evaluator, args[0], time_ms, |v| {
            v * std::f64::consts::PI / 180.0
        })?,
        "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year" | "days_in_month"
        | "month" | "year" => {
            let part = |seconds: f64| calendar_part(name, seconds);
            // With no argument, the parts of the evaluation time.
            match args.first() {
                Some(arg) => element_wise(evaluator, arg, time_ms, part)?,
                None => Value::Vector(vec![Sample {
                    labels: Labels::new().into(),
                    value: part(time_ms as f64 / 1000.0),
                }]),
            }
        }
        "round" => {
            let to_nearest = match args.get(1) {
                Some(arg) => evaluator.eval_scalar(arg, time_ms)?,
                None => 1.0,
            };
            let inverse = 1.0 / to_nearest;
            element_wise(evaluator, args[0], time_ms, |v| {
                (v * inverse + 0.5).floor() / inverse
            })?
        }
        "clamp" => {
            let min = evaluator.eval_scalar(args[1], time_ms)?;
            let max = evaluator.eval_scalar(args[2], time_ms)?;
            if max < min {
                Value::Vector(Vec::new())
            } else {
                element_wise(evaluator, args[0], time_ms, |v| min.max(max.min(v)))?
            }
        }
        "clamp_min" => {
            let min = evaluator.eval_scalar(args[1], time_ms)?;
            element_wise(evaluator, args[0], time_ms, |v| min.max(v))?
        }
        "clamp_max" => {
            let max = evaluator.eval_scalar(args[1], time_ms)?;
            element_wise(evaluator, args[0], time_ms, |v| max.min(v))?
        }
        "abs" => element_wise(evaluator, args[0], time_ms, f64::abs)?,
        "ceil" => element_wise(evaluator, args[0], time_ms, f64::ceil)?,
        "floor" => element_wise(evaluator, args[0], time_ms, f64::floor)?,
        "exp" => element_wise(evaluator, args[0], time_ms, f64::exp)?,
        "sqrt" => element_wise(evaluator, args[0], time_ms, f64::sqrt)?,
        "ln" => element_wise(evaluator, args[0], time_ms, f64::ln)?,
        "log2" => element_wise(evaluator, args[0], time_ms, f64::log2)?,
        "log10" => element_wise(evaluator, args[0], time_ms, f64::log10)?,
        "sgn" => element_wise(evaluator, args[0], time_ms, |v| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        })?,
        other => return Err(PromqlError::unsupported(format!("function {other}()"))),
    };
    Ok(value)
}

/// Applies `f` to every element, dropping the metric name (Prometheus' `simpleFunc`).
fn element_wise(
    evaluator: &Evaluator,
    arg: &Expr,
    time_ms: i64,
    f: impl Fn(f64) -> f64,
) -> Result<Value, PromqlError> {
    let samples: Vec<Sample> = evaluator
        .eval_vector(arg, time_ms)?
        .into_iter()
        .map(|sample| Sample {
            labels: drop_metric_name(&sample.labels),
            value: f(sample.value),
        })
        .collect();
    check_unique(&samples)?;
    Ok(Value::Vector(samples))
}

/// The labels `absent()` gives: the selector's `=` matchers, except a label matched twice.
fn absent_labels(arg: &Expr) -> Labels {
    let selector = match unwrap_parens(arg) {
        Expr::VectorSelector(selector) => selector,
        Expr::MatrixSelector(matrix) => &matrix.vs,
        _ => return Labels::new(),
    };
    let mut labels = Labels::new();
    let mut seen = std::collections::HashSet::new();
    let mut removed = std::collections::HashSet::new();
    for matcher in &selector.matchers.matchers {
        if matcher.name == METRIC_NAME {
            continue;
        }
        let is_equal = matches!(matcher.op, promql_parser::label::MatchOp::Equal);
        if is_equal && seen.insert(matcher.name.clone()) {
            labels.insert(matcher.name.clone(), matcher.value.clone());
        } else {
            removed.insert(matcher.name.clone());
        }
    }
    Labels::from_pairs(
        labels
            .iter()
            .filter(|(name, _)| !removed.contains(*name))
            .map(|(name, value)| (name.to_owned(), value.to_owned())),
    )
}

fn string_arg(arg: &Expr) -> Result<String, PromqlError> {
    match unwrap_parens(arg) {
        Expr::StringLiteral(text) => Ok(text.val.clone()),
        _ => Err(PromqlError::BadData(
            "expected a string literal argument".to_owned(),
        )),
    }
}

/// `label_replace(v, dst, replacement, src, regex)`: where the anchored regex matches the
/// value of `src`, `dst` becomes the expanded replacement (removed when empty).
fn label_replace(
    evaluator: &Evaluator,
    args: &[&Expr],
    time_ms: i64,
) -> Result<Vec<Sample>, PromqlError> {
    let destination = string_arg(args[1])?;
    let replacement = string_arg(args[2])?;
    let source = string_arg(args[3])?;
    let pattern = string_arg(args[4])?;
    let regex = regex::Regex::new(&format!("^(?s:{pattern})$")).map_err(|_| {
        PromqlError::BadData(format!(
            "invalid regular expression in label_replace(): {pattern}"
        ))
    })?;
    let valid_name = regex::Regex::new("^[a-zA-Z_][a-zA-Z0-9_]*$").expect("a valid pattern");
    if !valid_name.is_match(&destination) {
        return Err(PromqlError::BadData(format!(
            "invalid destination label name in label_replace(): {destination}"
        )));
    }
    let mut out = Vec::new();
    for sample in evaluator.eval_vector(args[0], time_ms)? {
        let source_value = sample.labels.get(&source).unwrap_or("");
        let labels = match regex.captures(source_value) {
            None => sample.labels,
            Some(captures) => {
                let mut expanded = String::new();
                captures.expand(&replacement, &mut expanded);
                let mut labels = Labels::from_pairs(
                    sample
                        .labels
                        .iter()
                        .filter(|(name, _)| *name != destination),
                );
                if !expanded.is_empty() {
                    labels.insert(destination.clone(), expanded);
                }
                labels.into()
            }
        };
        out.push(Sample {
            labels,
            value: sample.value,
        });
    }
    check_unique(&out)?;
    Ok(out)
}

/// `label_join(v, dst, separator, src…)`: `dst` becomes the `src` values joined
/// (removed when that is empty).
fn label_join(
    evaluator: &Evaluator,
    args: &[&Expr],
    time_ms: i64,
) -> Result<Vec<Sample>, PromqlError> {
    let destination = string_arg(args[1])?;
    let separator = string_arg(args[2])?;
    let sources = args[3..]
        .iter()
        .map(|arg| string_arg(arg))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for sample in evaluator.eval_vector(args[0], time_ms)? {
        let joined = sources
            .iter()
            .map(|source| sample.labels.get(source).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(&separator);
        let mut labels = Labels::from_pairs(
            sample
                .labels
                .iter()
                .filter(|(name, _)| *name != destination),
        );
        if !joined.is_empty() {
            labels.insert(destination.clone(), joined);
        }
        out.push(Sample {
            labels: labels.into(),
            value: sample.value,
        });
    }
    check_unique(&out)?;
    Ok(out)
}

/// `timestamp(v)`: a selector's samples' own times; any other vector's evaluation time.
fn timestamp(evaluator: &Evaluator, arg: &Expr, time_ms: i64) -> Result<Vec<Sample>, PromqlError> {
    let out: Vec<Sample> = match unwrap_parens(arg) {
        Expr::VectorSelector(selector) => {
            let reference = evaluator.reference_ms(selector, time_ms);
            evaluator
                .window(selector, reference - super::LOOKBACK_MS, reference)
                .filter_map(|(series, samples)| {
                    samples.last().map(|sample| Sample {
                        labels: series.labels_without_name.clone(),
                        value: sample.timestamp_ms as f64 / 1000.0,
                    })
                })
                .collect()
        }
        other => evaluator
            .eval_vector(other, time_ms)?
            .into_iter()
            .map(|sample| Sample {
                labels: drop_metric_name(&sample.labels),
                value: time_ms as f64 / 1000.0,
            })
            .collect(),
    };
    check_unique(&out)?;
    Ok(out)
}

/// A part of the UTC date and time `seconds` after the epoch, as Prometheus' date functions
/// give it (`day_of_week` 0 for Sunday).
fn calendar_part(name: &str, seconds: f64) -> f64 {
    if !seconds.is_finite() {
        return f64::NAN;
    }
    let Ok(timestamp) = jiff::Timestamp::from_second(seconds.trunc() as i64) else {
        return f64::NAN;
    };
    let date_time = jiff::tz::TimeZone::UTC.to_datetime(timestamp);
    f64::from(match name {
        "minute" => i16::from(date_time.minute()),
        "hour" => i16::from(date_time.hour()),
        "day_of_week" => i16::from(date_time.weekday().to_sunday_zero_offset()),
        "day_of_month" => i16::from(date_time.day()),
        "day_of_year" => date_time.day_of_year(),
        "days_in_month" => i16::from(date_time.days_in_month()),
        "month" => i16::from(date_time.month()),
        _ => date_time.year(),
    })
}

/// A function of a range selector, evaluated for each series with samples in its window.
fn range_function(
    evaluator: &Evaluator,
    name: &str,
    args: &[&Expr],
    time_ms: i64,
) -> Result<Value, PromqlError> {
    let (matrix_index, matrix) = args
        .iter()
        .enumerate()
        .find_map(|(i, arg)| match unwrap_parens(arg) {
            Expr::MatrixSelector(matrix) => Some((i, matrix)),
            _ => None,
        })
        .ok_or_else(|| PromqlError::BadData(format!("{name}() expects a range vector argument")))?;
    // The scalar argument, where there is one, is evaluated at each step.
    let scalar = match args.iter().enumerate().find(|(i, _)| *i != matrix_index) {
        Some((_, arg)) => Some(evaluator.eval_scalar(arg, time_ms)?),
        None => None,
    };
    let range_ms = matrix.range.as_millis() as i64;
    let reference = evaluator.reference_ms(&matrix.vs, time_ms);
    let range_start = reference - range_ms;
    let mut out = Vec::new();
    let mut any = false;
    for (series, samples) in evaluator.window(&matrix.vs, range_start, reference) {
        any = true;
        let value = match name {
            "rate" => extrapolated_rate(samples, range_start, reference, true, true),
            "increase" => extrapolated_rate(samples, range_start, reference, true, false),
            "delta" => extrapolated_rate(samples, range_start, reference, false, false),
            "irate" => instant_value(samples, true),
            "idelta" => instant_value(samples, false),
            "deriv" => {
                (samples.len() >= 2).then(|| linear_regression(samples, samples[0].timestamp_ms).0)
            }
            "predict_linear" => (samples.len() >= 2).then(|| {
                let (slope, intercept) = linear_regression(samples, time_ms);
                slope * scalar.unwrap_or(0.0) + intercept
            }),
            "changes" => Some(
                samples
                    .windows(2)
                    .filter(|pair| {
                        pair[1].value != pair[0].value
                            && !(pair[1].value.is_nan() && pair[0].value.is_nan())
                    })
                    .count() as f64,
            ),
            "resets" => Some(
                samples
                    .windows(2)
                    .filter(|pair| pair[1].value < pair[0].value)
                    .count() as f64,
            ),
            "avg_over_time" => Some(avg_over_time(samples)),
            "min_over_time" => Some(samples.iter().fold(samples[0].value, |min, s| {
                if s.value < min || min.is_nan() {
                    s.value
                } else {
                    min
                }
            })),
            "max_over_time" => Some(samples.iter().fold(samples[0].value, |max, s| {
                if s.value > max || max.is_nan() {
                    s.value
                } else {
                    max
                }
            })),
            "sum_over_time" => Some(kahan_sum(samples.iter().map(|s| s.value))),
            "count_over_time" => Some(samples.len() as f64),
            "last_over_time" => samples.last().map(|s| s.value),
            "present_over_time" => Some(1.0),
            "stddev_over_time" => Some(variance_over_time(samples).sqrt()),
            "stdvar_over_time" => Some(variance_over_time(samples)),
            "quantile_over_time" => Some(quantile(
                scalar.unwrap_or(f64::NAN),
                samples.iter().map(|s| s.value).collect(),
            )),
            "absent_over_time" => None,
            other => return Err(PromqlError::unsupported(format!("function {other}()"))),
        };
        if let Some(value) = value {
            // last_over_time acts like an offset and keeps the metric name.
            let labels = if name == "last_over_time" {
                series.labels.clone()
            } else {
                series.labels_without_name.clone()
            };
            out.push(Sample { labels, value });
        }
    }
    if name == "absent_over_time" {
        if any {
            return Ok(Value::Vector(Vec::new()));
        }
        return Ok(Value::Vector(vec![Sample {
            labels: absent_labels(args[matrix_index]).into(),
            value: 1.0,
        }]));
    }
    check_unique(&out)?;
    Ok(Value::Vector(out))
}

/// `rate`, `increase` and `delta`: the change over the window, corrected for counter resets,
/// extrapolated towards the window's edges where the first and last samples are near them.
pub fn extrapolated_rate(
    samples: &[StoredSample],
    range_start_ms: i64,
    range_end_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let first = samples[0];
    let last = samples[samples.len() - 1];
    let mut result = last.value - first.value;
    if is_counter {
        let mut previous = first.value;
        for sample in &samples[1..] {
            if sample.value < previous {
                result += previous;
            }
            previous = sample.value;
        }
    }
    let mut duration_to_start = (first.timestamp_ms - range_start_ms) as f64 / 1000.0;
    let duration_to_end = (range_end_ms - last.timestamp_ms) as f64 / 1000.0;
    let sampled_interval = (last.timestamp_ms - first.timestamp_ms) as f64 / 1000.0;
    let average_between_samples = sampled_interval / (samples.len() - 1) as f64;
    if is_counter && result > 0.0 && first.value >= 0.0 {
        let duration_to_zero = sampled_interval * (first.value / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    let threshold = average_between_samples * 1.1;
    let mut extrapolate_to = sampled_interval;
    extrapolate_to += if duration_to_start < threshold {
        duration_to_start
    } else {
        average_between_samples / 2.0
    };
    extrapolate_to += if duration_to_end < threshold {
        duration_to_end
    } else {
        average_between_samples / 2.0
    };
    let mut factor = extrapolate_to / sampled_interval;
    if is_rate {
        factor /= (range_end_ms - range_start_ms) as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: from the last two samples.
fn instant_value(samples: &[StoredSample], is_rate: bool) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let last = samples[samples.len() - 1];
    let previous = samples[samples.len() - 2];
    let mut result = if is_rate && last.value < previous.value {
        last.value
    } else {
        last.value - previous.value
    };
    let interval_ms = last.timestamp_ms - previous.timestamp_ms;
    if interval_ms == 0 {
        return None;
    }
    if is_rate {
        result /= interval_ms as f64 / 1000.0;
    }
    Some(result)
}

/// Neumaier's improvement of Kahan summation, one step.
fn kahan_add(increment: f64, sum: f64, compensation: f64) -> (f64, f64) {
    let total = sum + increment;
    let compensation = if sum.abs() >= increment.abs() {
        compensation + ((sum - total) + increment)
    } else {
        compensation + ((increment - total) + sum)
    };
    (total, compensation)
}

fn kahan_sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut compensation) = (0.0, 0.0);
    for value in values {
        (sum, compensation) = kahan_add(value, sum, compensation);
    }
    if sum.is_infinite() {
        sum
    } else {
        sum + compensation
    }
}

fn avg_over_time(samples: &[StoredSample]) -> f64 {
    let (mut mean, mut count, mut compensation) = (0.0_f64, 0.0_f64, 0.0_f64);
    for sample in samples {
        let value = sample.value;
        count += 1.0;
        if mean.is_infinite() {
            if value.is_infinite() && (mean > 0.0) == (value > 0.0) {
                continue;
            }
            if !value.is_infinite() && !value.is_nan() {
                continue;
            }
        }
        (mean, compensation) = kahan_add(value / count - mean / count, mean, compensation);
    }
    if mean.is_infinite() {
        mean
    } else {
        mean + compensation
    }
}

/// Population variance, Welford's method with Kahan-compensated sums.
fn variance_over_time(samples: &[StoredSample]) -> f64 {
    let (mut count, mut mean, mut mean_c, mut aux, mut aux_c) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for sample in samples {
        count += 1.0;
        let delta = sample.value - (mean + mean_c);
        (mean, mean_c) = kahan_add(delta / count, mean, mean_c);
        (aux, aux_c) = kahan_add(delta * (sample.value - (mean + mean_c)), aux, aux_c);
    }
    (aux + aux_c) / count
}

/// Least-squares slope (per second) and intercept at `intercept_ms`.
fn linear_regression(samples: &[StoredSample], intercept_ms: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let initial = samples[0].value;
    let mut constant = true;
    for (i, sample) in samples.iter().enumerate() {
        if constant && i > 0 && sample.value != initial {
            constant = false;
        }
        n += 1.0;
        let x = (sample.timestamp_ms - intercept_ms) as f64 / 1e3;
        (sum_x, c_x) = kahan_add(x, sum_x, c_x);
        (sum_y, c_y) = kahan_add(sample.value, sum_y, c_y);
        (sum_xy, c_xy) = kahan_add(x * sample.value, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_add(x * x, sum_x2, c_x2);
    }
    if constant {
        if initial.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, initial);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2);
    let covariance = sum_xy - sum_x * sum_y / n;
    let variance = sum_x2 - sum_x * sum_x / n;
    let slope = covariance / variance;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// The φ-quantile of `values`, interpolating between the two nearest ranks; NaN sorts first.
pub fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(points: &[(i64, f64)]) -> Vec<StoredSample> {
        points
            .iter()
            .map(|&(timestamp_ms, value)| StoredSample {
                timestamp_ms,
                value,
            })
            .collect()
    }

    #[test]
    fn rate_extrapolates_to_the_window_edges_and_corrects_counter_resets() {
        // A counter rising 10 every 10 s, reset once; the window is [0, 60 s].
        let points = samples(&[
            (5_000, 10.0),
            (15_000, 20.0),
            (25_000, 30.0),
            (35_000, 5.0),
            (45_000, 15.0),
            (55_000, 25.0),
        ]);
        // Raw increase: 25 - 10 + 30 (reset) = 45 over 50 s of samples; 5 s to each edge is
        // under 1.1 × the 10 s spacing, so it extrapolates to 60 s: 45 × 60 / 50 = 54.
        let increase = extrapolated_rate(&points, 0, 60_000, true, false).unwrap();
        assert!((increase - 54.0).abs() < 1e-9, "increase {increase}");
        let rate = extrapolated_rate(&points, 0, 60_000, true, true).unwrap();
        assert!((rate - 0.9).abs() < 1e-9, "rate {rate}");
    }

    #[test]
    fn rate_stops_extrapolating_at_the_counters_zero_point() {
        // The counter starts at 1 and gains 10 per 10 s: the zero point is 1 s before the
        // first sample, nearer than the 5 s to the window's start.
        let points = samples(&[(5_000, 1.0), (15_000, 11.0), (25_000, 21.0)]);
        let increase = extrapolated_rate(&points, 0, 30_000, true, false).unwrap();
        // 20 over 20 s, extended by 1 s (zero point) and 5 s (end): 20 × 26 / 20 = 26.
        assert!((increase - 26.0).abs() < 1e-9, "increase {increase}");
    }

    #[test]
    fn a_rate_needs_two_samples() {
        assert_eq!(
            extrapolated_rate(&samples(&[(1_000, 3.0)]), 0, 60_000, true, true),
            None
        );
        assert_eq!(instant_value(&samples(&[(1_000, 3.0)]), true), None);
    }

    #[test]
    fn irate_uses_the_last_two_samples_and_a_reset_counts_from_zero() {
        let points = samples(&[(0, 100.0), (10_000, 200.0), (20_000, 50.0)]);
        assert_eq!(instant_value(&points, true), Some(5.0));
        assert_eq!(instant_value(&points, false), Some(-150.0));
    }

    #[test]
    fn deriv_and_predict_linear_fit_a_straight_line() {
        let points = samples(&[(0, 1.0), (10_000, 3.0), (20_000, 5.0)]);
        let (slope, intercept) = linear_regression(&points, 20_000);
        assert!((slope - 0.2).abs() < 1e-12);
        assert!((intercept - 5.0).abs() < 1e-12);
        // A constant series has slope zero, whatever its spacing.
        let flat = samples(&[(0, 7.0), (3_000, 7.0)]);
        assert_eq!(linear_regression(&flat, 0), (0.0, 7.0));
    }

    #[test]
    fn quantile_interpolates_between_ranks_and_saturates_outside_zero_to_one() {
        assert_eq!(quantile(0.5, vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(quantile(0.0, vec![4.0, 1.0]), 1.0);
        assert_eq!(quantile(1.5, vec![4.0, 1.0]), f64::INFINITY);
        assert!(quantile(0.5, Vec::new()).is_nan());
    }

    #[test]
    fn variance_and_average_match_the_textbook_values() {
        let points = samples(&[
            (0, 2.0),
            (1, 4.0),
            (2, 4.0),
            (3, 4.0),
            (4, 5.0),
            (5, 5.0),
            (6, 7.0),
            (7, 9.0),
        ]);
        assert!((variance_over_time(&points) - 4.0).abs() < 1e-12);
        assert!((avg_over_time(&points) - 5.0).abs() < 1e-12);
    }
}
