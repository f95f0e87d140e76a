//! The series index in sled: labels → id (`series_by_labels`), id → labels (`series`), and
//! a posting per label pair (`postings`), which selectors use to find candidate series
//! without reading every series' labels. Series are created here and deleted here (by
//! retention, once they hold no data); the samples themselves live elsewhere.

use std::collections::BTreeSet;
use std::path::PathBuf;

use vigil_proto::model::Labels;

use super::error::StoreError;
use super::keys;
use super::selector::{LabelMatcher, MatchOp, Selector};

#[derive(Clone)]
pub(super) struct Index {
    pub data_dir: PathBuf,
    pub series: sled::Tree,
    pub series_by_labels: sled::Tree,
    pub postings: sled::Tree,
}

impl Index {
    fn storage(&self, action: impl Into<String>, error: sled::Error) -> StoreError {
        StoreError::storage(&self.data_dir, action, error)
    }

    fn malformed(&self, what: impl Into<String>) -> StoreError {
        StoreError::malformed(&self.data_dir, what)
    }

    /// The id of the series with these encoded labels.
    pub fn lookup(&self, labels_key: &[u8]) -> Result<Option<u64>, StoreError> {
        let bytes = self
            .series_by_labels
            .get(labels_key)
            .map_err(|error| self.storage("reading the series index", error))?;
        bytes
            .map(|bytes| {
                keys::decode_u64(&bytes)
                    .ok_or_else(|| self.malformed("series id in the series index"))
            })
            .transpose()
    }

    /// Creates series `series_id`. The labels → id entry goes last, so that a series found
    /// by its labels always has its other entries.
    pub fn create(
        &self,
        series_id: u64,
        labels: &Labels,
        labels_key: &[u8],
    ) -> Result<(), StoreError> {
        let id_bytes = keys::encode_series_id(series_id);
        let result = (|| {
            self.series.insert(id_bytes, labels_key)?;
            for (name, value) in labels.iter() {
                self.postings
                    .insert(keys::postings_key(name, value, series_id), &[])?;
            }
            self.series_by_labels.insert(labels_key, &id_bytes)?;
            Ok(())
        })();
        result.map_err(|error| self.storage(format!("creating series {labels}"), error))
    }

    /// Makes sure series `series_id` exists with these labels and every entry that finds
    /// it (log replay: the log is what made it, the index may have lost part of it in a
    /// crash). Every entry is written again, whatever is there: sled makes each tree
    /// durable on its own, so a crash can keep `series` and lose the postings and the
    /// labels → id entry, and a series that only `series` knows is invisible to selectors.
    /// Replay calls this once per series (for the record that created it).
    pub fn ensure(&self, series_id: u64, labels_key: &[u8]) -> Result<(), StoreError> {
        let labels = keys::decode_labels(labels_key).ok_or_else(|| {
            self.malformed(format!(
                "labels of series {series_id} in the write-ahead log"
            ))
        })?;
        self.create(series_id, &labels, labels_key)
    }

    /// The encoded labels of a series.
    pub fn labels_key(&self, series_id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .series
            .get(keys::encode_series_id(series_id))
            .map_err(|error| self.storage(format!("reading series {series_id}"), error))?
            .map(|bytes| bytes.to_vec()))
    }

    /// One more than the highest series id in the index (0 when empty).
    pub fn next_series_id(&self) -> Result<u64, StoreError> {
        match self
            .series
            .last()
            .map_err(|error| self.storage("reading the series index", error))?
        {
            Some((key, _)) => keys::decode_u64(&key)
                .map(|id| id + 1)
                .ok_or_else(|| self.malformed("series id key")),
            None => Ok(0),
        }
    }

    /// Every series id, in order.
    pub fn all_series_ids(&self) -> impl Iterator<Item = Result<u64, StoreError>> + '_ {
        self.series.iter().keys().map(move |key| {
            let key = key.map_err(|error| self.storage("reading the series index", error))?;
            keys::decode_u64(&key).ok_or_else(|| self.malformed("series id key"))
        })
    }

    /// Deletes series `series_id` from all three trees.
    pub fn delete(&self, series_id: u64) -> Result<(), StoreError> {
        let Some(labels_key) = self.labels_key(series_id)? else {
            return Ok(());
        };
        let labels = keys::decode_labels(&labels_key)
            .ok_or_else(|| self.malformed(format!("labels of series {series_id}")))?;
        let result = (|| {
            self.series_by_labels.remove(&labels_key)?;
            for (name, value) in labels.iter() {
                self.postings
                    .remove(keys::postings_key(name, value, series_id))?;
            }
            self.series.remove(keys::encode_series_id(series_id))?;
            Ok(())
        })();
        result.map_err(|error| self.storage(format!("deleting series {labels}"), error))
    }

    /// The series the selector selects, with their labels, in id order.
    pub fn select(&self, selector: &Selector) -> Result<Vec<(u64, Labels)>, StoreError> {
        let mut selected = Vec::new();
        for series_id in self.candidate_series(selector)? {
            // Retention may have deleted the series since its postings were read.
            let Some(labels_key) = self.labels_key(series_id)? else {
                continue;
            };
            let labels = keys::decode_labels(&labels_key)
                .ok_or_else(|| self.malformed(format!("labels of series {series_id}")))?;
            if selector.matches(&labels) {
                selected.push((series_id, labels));
            }
        }
        Ok(selected)
    }

    /// Ids of the series that may match: those in the postings of the selector's `=`
    /// matchers, or else of one matcher that needs its label to be present. The caller
    /// still checks every matcher against each series' labels.
    fn candidate_series(&self, selector: &Selector) -> Result<BTreeSet<u64>, StoreError> {
        let equal_matchers: Vec<&LabelMatcher> = selector
            .matchers()
            .iter()
            .filter(|matcher| matcher.op() == MatchOp::Equal && !matcher.value().is_empty())
            .collect();
        if !equal_matchers.is_empty() {
            let mut candidates: Option<BTreeSet<u64>> = None;
            for matcher in equal_matchers {
                let ids = self.postings_of(matcher, |_| true)?;
                let narrowed = match candidates {
                    Some(previous) => previous.intersection(&ids).copied().collect(),
                    None => ids,
                };
                if narrowed.is_empty() {
                    return Ok(narrowed);
                }
                candidates = Some(narrowed);
            }
            return Ok(candidates.unwrap_or_default());
        }
        // A parsed selector always has a matcher that needs its label; one built in code
        // from `=` matchers with empty values only selects series without a metric name,
        // and the store has none.
        match selector
            .matchers()
            .iter()
            .find(|matcher| !matcher.matches(""))
        {
            Some(matcher) => self.postings_of(matcher, |value| matcher.matches(value)),
            None => Ok(BTreeSet::new()),
        }
    }

    /// Ids of the series whose label `matcher.name()` has a value accepted by `accept`;
    /// for an `=` matcher only its own value is scanned.
    fn postings_of(
        &self,
        matcher: &LabelMatcher,
        accept: impl Fn(&str) -> bool,
    ) -> Result<BTreeSet<u64>, StoreError> {
        let name_prefix = keys::postings_name_prefix(matcher.name());
        let scan_prefix = match matcher.op() {
            MatchOp::Equal => keys::postings_pair_prefix(matcher.name(), matcher.value()),
            _ => name_prefix.clone(),
        };
        let mut ids = BTreeSet::new();
        for entry in self.postings.scan_prefix(&scan_prefix).keys() {
            let key = entry.map_err(|error| self.storage("reading the label index", error))?;
            let (value, series_id) =
                keys::decode_postings_key(&name_prefix, &key).ok_or_else(|| {
                    self.malformed(format!("label index entry for label '{}'", matcher.name()))
                })?;
            if accept(value) {
                ids.insert(series_id);
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_restores_the_entries_a_crash_lost_even_when_the_series_entry_survived() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let index = Index {
            data_dir: dir.path().to_owned(),
            series: db.open_tree("series").unwrap(),
            series_by_labels: db.open_tree("series_by_labels").unwrap(),
            postings: db.open_tree("postings").unwrap(),
        };
        let labels = Labels::from_pairs([
            ("__name__", "process_memory_rss_bytes"),
            ("host", "lg-host-00001"),
            ("process", "w3wp.exe"),
        ]);
        let labels_key = keys::encode_labels(&labels);
        index.create(7, &labels, &labels_key).unwrap();
        // What a kill between sled's flushes can leave: the id → labels entry only.
        index.series_by_labels.clear().unwrap();
        index.postings.clear().unwrap();
        let selector: Selector = "process_memory_rss_bytes{host=\"lg-host-00001\"}"
            .parse()
            .unwrap();
        assert!(index.select(&selector).unwrap().is_empty());

        index.ensure(7, &labels_key).unwrap();
        assert_eq!(index.lookup(&labels_key).unwrap(), Some(7));
        let found = index.select(&selector).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 7);
    }
}
