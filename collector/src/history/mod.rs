//! The alert history: an append-only journal of every alert transition — fired, severity
//! changed, held for maintenance, resolved — with what the client's contract made of it,
//! kept so that a month of alerts can be read back for the client's monthly report.
//!
//! The outbox keeps what still has to be delivered and a few hundred sent messages; it is
//! not a record of the month. [`History`] is: [`pipeline::Dispatch`](crate::pipeline::Dispatch)
//! hands it each decision as it is enqueued, and it appends one JSON line per decision to
//! `<data_dir>/history/YYYY-MM.jsonl` (the UTC month of the decision), fsynced before the
//! call returns. Nothing is ever rewritten. [`History::read_range`] reads the lines of a
//! time range back in order; a torn last line (a crash mid-write) is skipped, never fatal.
//!
//! It does no judging: what an entry means for availability or response times is the
//! report's business ([`crate::report`]).

mod journal;

pub use journal::{History, HistoryEntry, HistoryEvent};

use std::path::PathBuf;

/// Everything that can go wrong with the journal.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("alert history {path}: {action} failed: {source}; check that the data folder is writable and not full")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}
