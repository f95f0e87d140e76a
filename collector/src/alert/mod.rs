//! Alert engine. (Being written.)
