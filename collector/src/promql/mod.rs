//! PromQL over the store: a query is parsed by the `promql-parser` crate ([`parse`]), its
//! selectors are read from the [`crate::store::Store`] once for the whole query range
//! ([`eval::Evaluator`]), and the expression is evaluated step by step the way Prometheus 2
//! evaluates it: a 5-minute lookback for instant selectors, closed `[t - range, t]` windows
//! for range selectors, Prometheus' extrapolation for `rate`, `increase` and `delta`.
//! [`api::router`] serves the result as the Prometheus HTTP query API.
//!
//! Reading order: [`value`] (what a query returns, and its JSON), [`eval`] (selectors, the
//! step loop), [`functions`], [`aggregate`], [`binary`], [`api`]. What is not supported is
//! refused with [`PromqlError::Unsupported`] naming it, never evaluated approximately.

pub mod aggregate;
pub mod api;
pub mod binary;
pub mod eval;
pub mod functions;
pub mod value;

pub use eval::{evaluate_instant, evaluate_range, RangeQuery};
pub use value::{QueryValue, Sample, Series};

use crate::store::StoreError;

/// Prometheus' default lookback: an instant selector sees a series' latest sample up to
/// five minutes old; an older series is absent (Vigil has no staleness markers).
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// Prometheus' limit on the points of one series in a range query.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Why a query failed. [`PromqlError::error_type`] maps each to Prometheus' `errorType`.
#[derive(Debug, thiserror::Error)]
pub enum PromqlError {
    /// The text is not PromQL, or a parameter is malformed.
    #[error("{0}")]
    BadData(String),
    /// Valid PromQL that Vigil does not evaluate.
    #[error("{what} is not supported by vigil's promql evaluator (see docs/PROMQL.md)")]
    Unsupported { what: String },
    /// Evaluation failed the way Prometheus' does (duplicate series, many-to-many matches).
    #[error("{0}")]
    Execution(String),
    #[error("reading series for the query: {0}")]
    Store(#[from] StoreError),
}

impl PromqlError {
    pub fn unsupported(what: impl Into<String>) -> Self {
        PromqlError::Unsupported { what: what.into() }
    }

    /// Prometheus' `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            PromqlError::BadData(_) | PromqlError::Unsupported { .. } => "bad_data",
            PromqlError::Execution(_) => "execution",
            PromqlError::Store(_) => "internal",
        }
    }
}

/// Parses a PromQL expression; the parser's message becomes a `bad_data` error.
pub fn parse(query: &str) -> Result<promql_parser::parser::Expr, PromqlError> {
    promql_parser::parser::parse(query)
        .map_err(|error| PromqlError::BadData(format!("invalid parameter \"query\": {error}")))
}

#[cfg(test)]
mod tests;
