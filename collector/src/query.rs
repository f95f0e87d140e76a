//! `vigil-collector query`. (Being written.)
