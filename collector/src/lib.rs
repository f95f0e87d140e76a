//! Vigil collector.
pub mod query;
pub mod store;
