//! Property tests for the configuration and contract files an operator writes: whatever the
//! text, parsing returns a value or a one-line-per-problem error naming the file — never a
//! panic. Mutations of the shipped examples exercise the deeper validation paths.
//!
//! Run longer with `PROPTEST_CASES=100000 cargo test -p vigil-collector --test config_untrusted_input`.

use proptest::prelude::*;
use std::path::Path;
use vigil_collector::config::CollectorConfig;
use vigil_collector::policy::Policy;

fn example(relative: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(relative),
    )
    .expect("example file")
}

/// Replaces one byte range of `text` with `insert`, staying on character boundaries.
fn mutate(text: &str, at: usize, remove: usize, insert: &str) -> String {
    let mut start = at % (text.len() + 1);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + remove).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    format!("{}{insert}{}", &text[..start], &text[end..])
}

fn check_collector_config(text: &str) {
    let path = Path::new("fuzz/collector.toml");
    if let Err(error) = vigil_proto::config_file::parse::<CollectorConfig>(path, text) {
        let message = error.to_string();
        assert!(
            message.starts_with("config fuzz/collector.toml"),
            "{message}"
        );
    }
}

fn check_policy(text: &str) {
    if let Err(error) = Policy::parse(Path::new("fuzz/policy.toml"), text) {
        assert!(!error.to_string().is_empty());
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics_the_collector_config_parser(text in ".{0,400}") {
        check_collector_config(&text);
    }

    #[test]
    fn mutated_collector_configs_never_panic(at in any::<usize>(), remove in 0usize..40, insert in "[ -~\n]{0,40}") {
        check_collector_config(&mutate(&example("deploy/collector.toml"), at, remove, &insert));
    }

    #[test]
    fn arbitrary_text_never_panics_the_policy_parser(text in ".{0,400}") {
        check_policy(&text);
    }

    #[test]
    fn mutated_policies_never_panic(at in any::<usize>(), remove in 0usize..40, insert in "[ -~\n]{0,40}") {
        check_policy(&mutate(&example("deploy/policies/dental-practice.toml"), at, remove, &insert));
    }
}
