//! Collection: one module per source of measurements. (Being written.)
