//! The evaluator: reads every selector of a query from the store once, for the whole time
//! range the query needs, then evaluates the expression at each step as Prometheus 2 does.
//! An instant selector at `t` takes a series' latest sample in `[t - 5m, t]` (offset and `@`
//! move `t`); a range selector takes the samples in `[t - range, t]`. Raw samples only: the
//! five-minute rollups hold min, max, sum and count per bucket, which cannot give the
//! value at a point in time or the first and last sample of a window, so no PromQL answer
//! would be the same from them.

use std::collections::HashMap;
use std::sync::Arc;

use promql_parser::label::MatchOp as ParserMatchOp;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};
use vigil_proto::model::{Labels, Sample as StoredSample};

use super::value::{QueryValue, Sample, Series};
use super::{aggregate, binary, functions, PromqlError, LOOKBACK_MS};
use crate::store::{Selector, Store};

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// A range query's times, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeQuery {
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
}

/// A value during evaluation, at one step.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<Sample>),
    /// Only a range selector evaluates to this, at the top of an instant query.
    Matrix(Vec<Series>),
}

/// Evaluates `query` at one instant. `client` restricts every selector to that client.
pub fn evaluate_instant(
    store: &Store,
    client: Option<&str>,
    query: &str,
    time_ms: i64,
) -> Result<QueryValue, PromqlError> {
    let expr = super::parse(query)?;
    let evaluator = Evaluator::prepare(store, client, &expr, time_ms, time_ms)?;
    Ok(match evaluator.eval(&expr, time_ms)? {
        Value::Scalar(value) => QueryValue::Scalar {
            timestamp_ms: time_ms,
            value,
        },
        Value::String(value) => QueryValue::String {
            timestamp_ms: time_ms,
            value,
        },
        Value::Vector(samples) => QueryValue::Vector {
            timestamp_ms: time_ms,
            samples,
        },
        Value::Matrix(series) => QueryValue::Matrix(series),
    })
}

/// Evaluates `query` at every step of `range`; the result is a matrix of the series seen at
/// any step, sorted by labels, as Prometheus returns it.
pub fn evaluate_range(
    store: &Store,
    client: Option<&str>,
    query: &str,
    range: RangeQuery,
) -> Result<QueryValue, PromqlError> {
    let expr = super::parse(query)?;
    match expr.value_type() {
        ValueType::Vector | ValueType::Scalar => {}
        other => {
            let documented = match other {
                ValueType::Matrix => "range vector".to_owned(),
                other => other.to_string(),
            };
            return Err(PromqlError::BadData(format!(
                "invalid expression type \"{documented}\" for range query, must be Scalar or instant Vector"
            )));
        }
    }
    let step_ms = range.step_ms.max(1);
    let evaluator = Evaluator::prepare(store, client, &expr, range.start_ms, range.end_ms)?;
    let mut by_labels: HashMap<Arc<Labels>, Vec<(i64, f64)>> = HashMap::new();
    let mut time_ms = range.start_ms;
    while time_ms <= range.end_ms {
        match evaluator.eval(&expr, time_ms)? {
            Value::Scalar(value) => by_labels
                .entry(Arc::new(Labels::new()))
                .or_default()
                .push((time_ms, value)),
            Value::Vector(samples) => {
                for sample in samples {
                    by_labels
                        .entry(sample.labels)
                        .or_default()
                        .push((time_ms, sample.value));
                }
            }
            Value::String(_) | Value::Matrix(_) => {
                return Err(PromqlError::BadData(
                    "invalid expression type for range query, must be Scalar or instant Vector"
                        .to_owned(),
                ))
            }
        }
        time_ms += step_ms;
    }
    let mut series: Vec<Series> = by_labels
        .into_iter()
        .map(|(labels, points)| Series {
            labels: Arc::unwrap_or_clone(labels),
            points,
        })
        .collect();
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(QueryValue::Matrix(series))
}

/// One series of a selector, read once for the whole query. Its label sets are shared by
/// every step's vector instead of copied into each.
#[derive(Debug)]
pub struct FetchedSeries {
    pub labels: Arc<Labels>,
    pub labels_without_name: Arc<Labels>,
    samples: Vec<StoredSample>,
}

/// The series of one selector.
#[derive(Debug, Default)]
struct Fetched {
    series: Vec<FetchedSeries>,
}

/// A prepared query: the selectors' series, keyed by the address of their node in the
/// expression (which outlives the evaluator and does not move).
#[derive(Debug)]
pub struct Evaluator {
    start_ms: i64,
    end_ms: i64,
    fetched: HashMap<usize, Fetched>,
    /// Samples read so far, against [`MAX_LOADED_SAMPLES`].
    loaded_samples: usize,
}

/// A query reads at most this many raw samples (Prometheus' default `--query.max-samples`),
/// so that one query cannot take the collector's memory.
pub const MAX_LOADED_SAMPLES: usize = 50_000_000;

fn node_key(selector: &VectorSelector) -> usize {
    selector as *const VectorSelector as usize
}

/// An offset in milliseconds: positive looks back.
pub fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(duration)) => duration.as_millis() as i64,
        Some(Offset::Neg(duration)) => -(duration.as_millis() as i64),
    }
}

impl Evaluator {
    /// Checks that everything in `expr` is supported and reads its selectors for
    /// evaluations between `start_ms` and `end_ms`.
    pub fn prepare(
        store: &Store,
        client: Option<&str>,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Evaluator, PromqlError> {
        let mut evaluator = Evaluator {
            start_ms,
            end_ms,
            fetched: HashMap::new(),
            loaded_samples: 0,
        };
        evaluator.visit(store, client, expr)?;
        Ok(evaluator)
    }

    fn visit(
        &mut self,
        store: &Store,
        client: Option<&str>,
        expr: &Expr,
    ) -> Result<(), PromqlError> {
        match expr {
            Expr::Aggregate(aggregate) => {
                aggregate::check_supported(aggregate)?;
                if let Some(param) = &aggregate.param {
                    self.visit(store, client, param)?;
                }
                self.visit(store, client, &aggregate.expr)
            }
            Expr::Unary(unary) => self.visit(store, client, &unary.expr),
            Expr::Binary(binary_expr) => {
                binary::check_supported(binary_expr)?;
                self.visit(store, client, &binary_expr.lhs)?;
                self.visit(store, client, &binary_expr.rhs)
            }
            Expr::Paren(paren) => self.visit(store, client, &paren.expr),
            Expr::Subquery(_) => Err(PromqlError::unsupported("subquery")),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
            Expr::VectorSelector(selector) => self.fetch(store, client, selector, LOOKBACK_MS),
            Expr::MatrixSelector(matrix) => {
                self.fetch(store, client, &matrix.vs, matrix.range.as_millis() as i64)
            }
            Expr::Call(call) => {
                functions::check_supported(call)?;
                for arg in &call.args.args {
                    self.visit(store, client, arg)?;
                }
                Ok(())
            }
            Expr::Extension(_) => Err(PromqlError::unsupported("extension expression")),
        }
    }

    /// Reads the series of a selector for every evaluation time it will see, with
    /// `reach_ms` before each (the lookback, or a range selector's range).
    fn fetch(
        &mut self,
        store: &Store,
        client: Option<&str>,
        selector: &VectorSelector,
        reach_ms: i64,
    ) -> Result<(), PromqlError> {
        let (first, last) = match self.at_ms(selector) {
            Some(at_ms) => (at_ms, at_ms),
            None => (self.start_ms, self.end_ms),
        };
        let offset = offset_ms(&selector.offset);
        let store_selector = selector_for(selector, client)?;
        let selected = store.select(&store_selector, first - offset - reach_ms, last - offset)?;
        self.loaded_samples += selected
            .iter()
            .map(|series| series.samples.len())
            .sum::<usize>();
        if self.loaded_samples > MAX_LOADED_SAMPLES {
            return Err(PromqlError::Execution(format!(
                "query processing would load too many samples into memory in query execution (more than {MAX_LOADED_SAMPLES}); narrow the selectors or the time range"
            )));
        }
        let fetched = Fetched {
            series: selected
                .into_iter()
                .map(|series| FetchedSeries {
                    labels_without_name: Arc::new(drop_name(&series.labels)),
                    labels: Arc::new(series.labels),
                    samples: series.samples,
                })
                .collect(),
        };
        self.fetched.insert(node_key(selector), fetched);
        Ok(())
    }

    /// The fixed evaluation time an `@` modifier gives a selector.
    fn at_ms(&self, selector: &VectorSelector) -> Option<i64> {
        selector.at.as_ref().map(|at| match at {
            AtModifier::Start => self.start_ms,
            AtModifier::End => self.end_ms,
            AtModifier::At(time) => match time.duration_since(std::time::UNIX_EPOCH) {
                Ok(after) => after.as_millis() as i64,
                Err(before) => -(before.duration().as_millis() as i64),
            },
        })
    }

    /// The time a selector reads at when the query is evaluated at `time_ms`.
    pub fn reference_ms(&self, selector: &VectorSelector, time_ms: i64) -> i64 {
        self.at_ms(selector).unwrap_or(time_ms) - offset_ms(&selector.offset)
    }

    /// Every series of a selector with its samples in `[from_ms, to_ms]`, series without
    /// any left out.
    pub fn window<'a>(
        &'a self,
        selector: &VectorSelector,
        from_ms: i64,
        to_ms: i64,
    ) -> impl Iterator<Item = (&'a FetchedSeries, &'a [StoredSample])> + 'a {
        let series = self
            .fetched
            .get(&node_key(selector))
            .map(|fetched| fetched.series.as_slice())
            .unwrap_or(&[]);
        series.iter().filter_map(move |series| {
            let samples = &series.samples;
            let begin = samples.partition_point(|s| s.timestamp_ms < from_ms);
            let end = samples.partition_point(|s| s.timestamp_ms <= to_ms);
            (begin < end).then(|| (series, &samples[begin..end]))
        })
    }

    /// An instant selector at `time_ms`: each series' latest sample at most five minutes
    /// before the reference time.
    pub fn instant_vector(&self, selector: &VectorSelector, time_ms: i64) -> Vec<Sample> {
        let reference = self.reference_ms(selector, time_ms);
        self.window(selector, reference - LOOKBACK_MS, reference)
            .filter_map(|(series, samples)| {
                samples.last().map(|sample| Sample {
                    labels: series.labels.clone(),
                    value: sample.value,
                })
            })
            .collect()
    }

    /// Evaluates `expr` at `time_ms`.
    pub fn eval(&self, expr: &Expr, time_ms: i64) -> Result<Value, PromqlError> {
        match expr {
            Expr::Paren(paren) => self.eval(&paren.expr, time_ms),
            Expr::NumberLiteral(number) => Ok(Value::Scalar(number.val)),
            Expr::StringLiteral(text) => Ok(Value::String(text.val.clone())),
            Expr::Unary(unary) => match self.eval(&unary.expr, time_ms)? {
                Value::Scalar(value) => Ok(Value::Scalar(-value)),
                Value::Vector(samples) => {
                    let negated: Vec<Sample> = samples
                        .into_iter()
                        .map(|sample| Sample {
                            labels: drop_metric_name(&sample.labels),
                            value: -sample.value,
                        })
                        .collect();
                    check_unique(&negated)?;
                    Ok(Value::Vector(negated))
                }
                _ => Err(PromqlError::BadData(
                    "unary expression only allowed on expressions of type scalar or instant vector"
                        .to_owned(),
                )),
            },
            Expr::VectorSelector(selector) => {
                Ok(Value::Vector(self.instant_vector(selector, time_ms)))
            }
            Expr::MatrixSelector(matrix) => {
                let reference = self.reference_ms(&matrix.vs, time_ms);
                let range = matrix.range.as_millis() as i64;
                Ok(Value::Matrix(
                    self.window(&matrix.vs, reference - range, reference)
                        .map(|(series, samples)| Series {
                            labels: Labels::clone(&series.labels),
                            points: samples
                                .iter()
                                .map(|sample| (sample.timestamp_ms, sample.value))
                                .collect(),
                        })
                        .collect(),
                ))
            }
            Expr::Call(call) => functions::eval(self, call, time_ms),
            Expr::Aggregate(aggregate) => aggregate::eval(self, aggregate, time_ms),
            Expr::Binary(binary_expr) => binary::eval(self, binary_expr, time_ms),
            Expr::Subquery(_) => Err(PromqlError::unsupported("subquery")),
            Expr::Extension(_) => Err(PromqlError::unsupported("extension expression")),
        }
    }

    /// Evaluates an expression that must give an instant vector.
    pub fn eval_vector(&self, expr: &Expr, time_ms: i64) -> Result<Vec<Sample>, PromqlError> {
        match self.eval(expr, time_ms)? {
            Value::Vector(samples) => Ok(samples),
            other => Err(PromqlError::BadData(format!(
                "expected an instant vector, got {}",
                type_name(&other)
            ))),
        }
    }

    /// Evaluates an expression that must give a scalar.
    pub fn eval_scalar(&self, expr: &Expr, time_ms: i64) -> Result<f64, PromqlError> {
        match self.eval(expr, time_ms)? {
            Value::Scalar(value) => Ok(value),
            other => Err(PromqlError::BadData(format!(
                "expected a scalar, got {}",
                type_name(&other)
            ))),
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Scalar(_) => "scalar",
        Value::String(_) => "string",
        Value::Vector(_) => "instant vector",
        Value::Matrix(_) => "range vector",
    }
}

/// The store's selector for a PromQL one, with `client="…"` added for a scoped caller.
pub fn selector_for(
    selector: &VectorSelector,
    client: Option<&str>,
) -> Result<Selector, PromqlError> {
    if !selector.matchers.or_matchers.is_empty() {
        return Err(PromqlError::unsupported("`or` inside a selector's braces"));
    }
    let mut parts = Vec::new();
    if let Some(name) = &selector.name {
        parts.push(format!("{METRIC_NAME}={}", quote(name)));
    }
    for matcher in &selector.matchers.matchers {
        let op = match matcher.op {
            ParserMatchOp::Equal => "=",
            ParserMatchOp::NotEqual => "!=",
            ParserMatchOp::Re(_) => "=~",
            ParserMatchOp::NotRe(_) => "!~",
        };
        parts.push(format!("{}{op}{}", matcher.name, quote(&matcher.value)));
    }
    if let Some(client) = client {
        parts.push(format!("client={}", quote(client)));
    }
    let text = format!("{{{}}}", parts.join(","));
    text.parse::<Selector>()
        .map_err(|error| PromqlError::BadData(format!("selector {selector}: {error}")))
}

/// A label value in the store selector's syntax: raw in backquotes when it holds none,
/// else double-quoted with escapes.
fn quote(value: &str) -> String {
    if !value.contains('`') {
        return format!("`{value}`");
    }
    let mut quoted = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// The labels without `__name__`; the same shared set when it has none.
pub fn drop_metric_name(labels: &Arc<Labels>) -> Arc<Labels> {
    if labels.get(METRIC_NAME).is_none() {
        return labels.clone();
    }
    Arc::new(drop_name(labels))
}

fn drop_name(labels: &Labels) -> Labels {
    Labels::from_pairs(labels.iter().filter(|(name, _)| *name != METRIC_NAME))
}

/// Prometheus refuses a result with two elements of the same labels.
pub fn check_unique(samples: &[Sample]) -> Result<(), PromqlError> {
    if samples.len() < 2 {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::with_capacity(samples.len());
    for sample in samples {
        if !seen.insert(&sample.labels) {
            return Err(PromqlError::Execution(
                "vector cannot contain metrics with the same labelset".to_owned(),
            ));
        }
    }
    Ok(())
}
