//! The outbound queue: every batch waits here from the tick that made it until the
//! collector acknowledges it, so a reconnect resends exactly what is not yet safe.
//!
//! This version keeps the queue in memory, bounded, dropping (and counting) the oldest batch
//! when full; it survives collector outages but not an agent restart.

use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::watch;
use vigil_proto::model::{Batch, Series};

pub struct Spool {
    state: Mutex<SpoolState>,
    /// The newest sequence number pushed; the shipper waits on it for work.
    newest_seq: watch::Sender<u64>,
}

struct SpoolState {
    spool_id: u64,
    next_seq: u64,
    batches: VecDeque<Batch>,
    max_batches: usize,
    dropped_batches: u64,
}

impl Spool {
    /// An empty spool with a fresh random id: sequence numbers start again at 1, and the
    /// collector keys its replay protection on the id.
    pub fn new(max_batches: usize) -> Self {
        Self {
            state: Mutex::new(SpoolState {
                spool_id: rand::random::<u64>() | 1,
                next_seq: 1,
                batches: VecDeque::new(),
                max_batches: max_batches.max(1),
                dropped_batches: 0,
            }),
            newest_seq: watch::channel(0).0,
        }
    }

    pub fn spool_id(&self) -> u64 {
        self.lock().spool_id
    }

    /// Queues one tick's series as the next batch and returns its sequence number.
    pub fn push(&self, series: Vec<Series>) -> u64 {
        let seq = {
            let mut state = self.lock();
            let seq = state.next_seq;
            state.next_seq += 1;
            if state.batches.len() >= state.max_batches {
                state.batches.pop_front();
                state.dropped_batches += 1;
                tracing::warn!(
                    dropped_total = state.dropped_batches,
                    "spool full: dropped the oldest batch"
                );
            }
            state.batches.push_back(Batch { seq, series });
            seq
        };
        self.newest_seq.send_replace(seq);
        seq
    }

    /// Up to `limit` queued batches with a sequence number above `after`, oldest first.
    pub fn batches_after(&self, after: u64, limit: usize) -> Vec<Batch> {
        self.lock()
            .batches
            .iter()
            .filter(|batch| batch.seq > after)
            .take(limit)
            .cloned()
            .collect()
    }

    /// The collector has stored every batch up to `seq`.
    pub fn ack(&self, seq: u64) {
        let mut state = self.lock();
        while state.batches.front().is_some_and(|batch| batch.seq <= seq) {
            state.batches.pop_front();
        }
    }

    /// The collector refused batch `seq` for good.
    pub fn discard(&self, seq: u64) {
        self.lock().batches.retain(|batch| batch.seq != seq);
    }

    pub fn len(&self) -> usize {
        self.lock().batches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dropped_batches(&self) -> u64 {
        self.lock().dropped_batches
    }

    /// Watches the newest sequence number pushed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.newest_seq.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SpoolState> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_start_at_one_and_increase() {
        let spool = Spool::new(10);
        assert_eq!(spool.push(vec![]), 1);
        assert_eq!(spool.push(vec![]), 2);
        let seqs: Vec<u64> = spool.batches_after(0, 10).iter().map(|b| b.seq).collect();
        assert_eq!(seqs, vec![1, 2]);
    }

    #[test]
    fn an_ack_releases_everything_up_to_it() {
        let spool = Spool::new(10);
        for _ in 0..5 {
            spool.push(vec![]);
        }
        spool.ack(3);
        let seqs: Vec<u64> = spool.batches_after(0, 10).iter().map(|b| b.seq).collect();
        assert_eq!(seqs, vec![4, 5]);
        assert_eq!(spool.batches_after(4, 10).len(), 1);
    }

    #[test]
    fn a_full_spool_drops_the_oldest_and_counts_it() {
        let spool = Spool::new(2);
        for _ in 0..3 {
            spool.push(vec![]);
        }
        assert_eq!(spool.dropped_batches(), 1);
        let seqs: Vec<u64> = spool.batches_after(0, 10).iter().map(|b| b.seq).collect();
        assert_eq!(seqs, vec![2, 3]);
    }

    #[test]
    fn a_discarded_batch_is_not_sent_again() {
        let spool = Spool::new(10);
        spool.push(vec![]);
        spool.push(vec![]);
        spool.discard(1);
        assert_eq!(spool.batches_after(0, 10)[0].seq, 2);
    }
}
