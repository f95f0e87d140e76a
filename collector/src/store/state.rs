//! Small named records other rooms keep beside the time series (the alert engine's state),
//! in a tree of their own. A write is durable when it returns: sled's files are fsynced,
//! because sled's own flush is not a real fsync on Linux.

use super::{Store, StoreError};

const TREE: &str = "state";

impl Store {
    /// Replaces the record `key` and makes it durable.
    pub fn put_state(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let inner = &*self.inner;
        // sled treats a failed write as fatal for the process (a full disk would leave it
        // refusing every later write, the series index's included): nothing goes to it while
        // the log knows the disk fails. The caller keeps its state and saves it later.
        inner.wal.check_writable()?;
        let tree = inner
            .db
            .open_tree(TREE)
            .map_err(|error| inner.storage(format!("opening the state tree for '{key}'"), error))?;
        tree.insert(key.as_bytes(), bytes)
            .map_err(|error| inner.storage(format!("storing state '{key}'"), error))?;
        inner.sync_sled()
    }

    /// The record `key`, if one was stored.
    pub fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let inner = &*self.inner;
        let tree = inner
            .db
            .open_tree(TREE)
            .map_err(|error| inner.storage(format!("opening the state tree for '{key}'"), error))?;
        let value = tree
            .get(key.as_bytes())
            .map_err(|error| inner.storage(format!("reading state '{key}'"), error))?;
        Ok(value.map(|bytes| bytes.to_vec()))
    }
}
