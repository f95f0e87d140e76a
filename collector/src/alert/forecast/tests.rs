//! Tests of the forecast method on synthetic signals.
