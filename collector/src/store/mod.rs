//! Time-series storage on sled. (Being written.)
