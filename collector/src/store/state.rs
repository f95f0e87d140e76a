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

impl Store {
    /// Writes `puts` and deletes `removes` as one sled batch and makes them durable with one
    /// sync: how a room that keeps its state as many records saves only what changed.
    pub fn write_states(
        &self,
        puts: &[(String, Vec<u8>)],
        removes: &[String],
    ) -> Result<(), StoreError> {
        if puts.is_empty() && removes.is_empty() {
            return Ok(());
        }
        let inner = &*self.inner;
        // As in `put_state`: nothing goes to sled while the log knows the disk fails.
        inner.wal.check_writable()?;
        let tree = inner
            .db
            .open_tree(TREE)
            .map_err(|error| inner.storage("opening the state tree".to_string(), error))?;
        let mut batch = sled::Batch::default();
        for (key, bytes) in puts {
            batch.insert(key.as_bytes(), bytes.as_slice());
        }
        for key in removes {
            batch.remove(key.as_bytes());
        }
        tree.apply_batch(batch).map_err(|error| {
            inner.storage(
                format!("storing {} state records", puts.len() + removes.len()),
                error,
            )
        })?;
        inner.sync_sled()
    }

    /// Every record whose key starts with `prefix`, in key order.
    pub fn states_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let inner = &*self.inner;
        let tree = inner.db.open_tree(TREE).map_err(|error| {
            inner.storage(format!("opening the state tree for '{prefix}…'"), error)
        })?;
        let mut records = Vec::new();
        for entry in tree.scan_prefix(prefix.as_bytes()) {
            let (key, value) = entry
                .map_err(|error| inner.storage(format!("reading state '{prefix}…'"), error))?;
            records.push((String::from_utf8_lossy(&key).into_owned(), value.to_vec()));
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{Store, StoreConfig};

    #[test]
    fn records_written_together_are_read_back_by_prefix_and_removed_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::new(dir.path())).unwrap();
        store
            .write_states(
                &[
                    ("engine/host/pc-01".into(), b"one".to_vec()),
                    ("engine/host/pc-02".into(), b"two".to_vec()),
                    ("engine/pipeline".into(), b"p".to_vec()),
                ],
                &[],
            )
            .unwrap();
        let hosts = store.states_with_prefix("engine/host/").unwrap();
        assert_eq!(
            hosts,
            [
                ("engine/host/pc-01".to_string(), b"one".to_vec()),
                ("engine/host/pc-02".to_string(), b"two".to_vec())
            ]
        );
        store
            .write_states(
                &[("engine/host/pc-02".into(), b"2".to_vec())],
                &["engine/host/pc-01".into()],
            )
            .unwrap();
        assert_eq!(
            store.states_with_prefix("engine/host/").unwrap(),
            [("engine/host/pc-02".to_string(), b"2".to_vec())]
        );
        assert_eq!(store.state("engine/pipeline").unwrap(), Some(b"p".to_vec()));
    }
}
