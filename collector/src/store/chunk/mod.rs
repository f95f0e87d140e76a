//! Compressed chunks of samples. (Being written.)
