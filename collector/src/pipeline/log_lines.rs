//! The log lines agents send with their batches, kept per host until an alert on the count
//! they go with (`log_matches_total{log,pattern}`) needs one: the message then says what the
//! log said, not only that it matched.

use crate::alert::engine::{AlertState, Transition};
use crate::alert::kinds::LogLine;
use crate::alert::rule::FailureKind;
use std::collections::HashMap;
use vigil_proto::limits::MAX_LOG_EXCERPTS_PER_BATCH;
use vigil_proto::model::LogExcerpt;

/// The newest matched line per host, log and pattern.
#[derive(Debug, Default)]
pub struct LogLines {
    by_host: HashMap<String, Vec<LogExcerpt>>,
}

impl LogLines {
    /// Keeps a host's newest lines; a newer one replaces the older of the same log and
    /// pattern, and a host keeps at most as many as one batch may carry.
    pub fn note(&mut self, host: &str, excerpts: &[LogExcerpt]) {
        if excerpts.is_empty() {
            return;
        }
        let kept = self.by_host.entry(host.to_owned()).or_default();
        for excerpt in excerpts {
            kept.retain(|old| (&old.log, &old.pattern) != (&excerpt.log, &excerpt.pattern));
            // The agent cleans the line; one that did not must not break a message's layout.
            let mut excerpt = excerpt.clone();
            excerpt.line = LogExcerpt::printable(&excerpt.line);
            kept.push(excerpt);
        }
        let over = kept.len().saturating_sub(MAX_LOG_EXCERPTS_PER_BATCH);
        kept.drain(..over);
    }

    /// Forgets a host's lines (it was removed or revoked).
    pub fn forget(&mut self, host: &str) {
        self.by_host.remove(host);
    }

    /// `transition` with the matched line in its details, when it is a log pattern alert
    /// that fired and the host sent the line; `None` when there is nothing to add.
    pub fn attach(&self, transition: &Transition) -> Option<Transition> {
        if transition.category != Some(FailureKind::LogPattern)
            || transition.state != AlertState::Firing
        {
            return None;
        }
        let log = transition.labels.get("log")?;
        let pattern = transition.labels.get("pattern")?;
        let excerpt = self
            .by_host
            .get(&transition.host)?
            .iter()
            .find(|excerpt| excerpt.log == log && excerpt.pattern == pattern)?;
        let mut with_line = transition.clone();
        with_line.details.log_line = Some(LogLine {
            file: excerpt.file.clone(),
            line: excerpt.line.clone(),
        });
        Some(with_line)
    }
}
