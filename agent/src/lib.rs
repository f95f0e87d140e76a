//! Vigil agent.
pub mod collect;
