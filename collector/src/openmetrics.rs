//! OpenMetrics text parsing. (Being written.)
