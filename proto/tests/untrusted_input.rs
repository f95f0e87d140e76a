//! Property tests for everything the collector decodes from the network: whatever bytes or
//! message shapes an agent sends, decoding and validation return a value or an error —
//! never a panic — and whatever is accepted satisfies the limits.
//!
//! These stand in for coverage-guided fuzzing (which needs a nightly toolchain); the seeds
//! under `tests/corpus/` are replayed on every run, and a failing case found by proptest is
//! kept in `proptest-regressions/` so it is replayed forever after.

use proptest::prelude::*;
use prost::Message;
use std::path::Path;
use vigil_proto::convert::{is_valid_label_name, is_valid_metric_name};
use vigil_proto::join_token::JoinToken;
use vigil_proto::limits::*;
use vigil_proto::model::{AgentMessage, Batch};
use vigil_proto::pb;

fn wire_label() -> impl Strategy<Value = pb::Label> {
    (
        prop_oneof!["[a-z_][a-z0-9_]{0,8}", ".{0,12}", Just("host".to_string())],
        ".{0,20}",
    )
        .prop_map(|(name, value)| pb::Label { name, value })
}

fn wire_sample() -> impl Strategy<Value = pb::Sample> {
    (any::<i64>(), any::<f64>()).prop_map(|(timestamp_ms, value)| pb::Sample {
        timestamp_ms,
        value,
    })
}

fn wire_series() -> impl Strategy<Value = pb::Series> {
    (
        prop_oneof!["[a-z_:][a-z0-9_:]{0,16}", ".{0,16}"],
        prop::collection::vec(wire_label(), 0..20),
        prop::collection::vec(wire_sample(), 0..5),
    )
        .prop_map(|(name, labels, samples)| pb::Series {
            name,
            labels,
            samples,
        })
}

fn wire_excerpt() -> impl Strategy<Value = pb::LogExcerpt> {
    (
        ".{0,8}",
        ".{0,8}",
        ".{0,8}",
        prop_oneof![".{0,40}", ".{500,520}"],
        any::<i64>(),
    )
        .prop_map(|(log, pattern, file, line, timestamp_ms)| pb::LogExcerpt {
            log,
            pattern,
            file,
            line,
            timestamp_ms,
        })
}

/// What an accepted batch must satisfy.
fn assert_within_limits(batch: &Batch) {
    assert!(batch.seq >= 1);
    assert!(batch.series.len() <= MAX_SERIES_PER_BATCH);
    assert!(batch.sample_count() <= MAX_SAMPLES_PER_BATCH);
    for series in &batch.series {
        assert!(is_valid_metric_name(&series.name), "{:?}", series.name);
        assert!(series.labels.len() <= MAX_LABELS_PER_SERIES);
        for (name, value) in series.labels.iter() {
            assert!(is_valid_label_name(name), "{name:?}");
            assert!(!RESERVED_LABELS.contains(&name), "{name:?}");
            assert!(value.len() <= MAX_VALUE_BYTES);
        }
        assert!(series.samples.iter().all(|sample| sample.timestamp_ms > 0));
    }
    assert!(batch.log_excerpts.len() <= MAX_LOG_EXCERPTS_PER_BATCH);
    for excerpt in &batch.log_excerpts {
        for text in [&excerpt.log, &excerpt.pattern, &excerpt.file, &excerpt.line] {
            assert!(text.len() <= MAX_VALUE_BYTES, "{text:?}");
        }
    }
}

fn decode_agent_message(bytes: &[u8]) {
    if let Ok(message) = pb::AgentMessage::decode(bytes) {
        if let Ok(AgentMessage::Batch(batch)) = AgentMessage::try_from(message) {
            assert_within_limits(&batch);
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_agent_message(&bytes);
        let _ = pb::EnrollRequest::decode(bytes.as_slice());
    }

    #[test]
    fn accepted_batches_are_within_the_limits(
        seq in any::<u64>(),
        series in prop::collection::vec(wire_series(), 0..8),
        log_excerpts in prop::collection::vec(wire_excerpt(), 0..70),
    ) {
        let wire = pb::Batch { seq, series, log_excerpts };
        if let Ok(batch) = Batch::try_from(wire.clone()) {
            assert_within_limits(&batch);
        }
        // The same through bytes, as it arrives.
        let message = pb::AgentMessage { body: Some(pb::agent_message::Body::Batch(wire)) };
        decode_agent_message(&message.encode_to_vec());
    }

    #[test]
    fn arbitrary_text_never_panics_the_token_parser(text in ".{0,120}") {
        let _ = text.parse::<JoinToken>();
    }

    #[test]
    fn join_tokens_round_trip(secret in any::<[u8; 20]>(), port in 1u16.., fingerprint in any::<[u8; 32]>()) {
        let token = JoinToken { secret, enroll_port: port, ca_fingerprint: fingerprint };
        prop_assert_eq!(token.to_string().parse::<JoinToken>().unwrap(), token);
    }
}

/// Every file under `tests/corpus/agent_message/` is replayed through the decoder.
#[test]
fn the_checked_in_corpus_decodes_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/agent_message");
    let mut n_files = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus folder") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        decode_agent_message(&bytes);
        n_files += 1;
    }
    assert!(n_files >= 4, "the corpus has its seeds ({n_files})");
}
