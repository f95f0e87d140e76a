//! Metric families: the types OpenMetrics knows, which sample names each type allows, and
//! the bookkeeping that finds a family's samples split by another family.
//!
//! A family begins with a metadata line (`# TYPE`, `# UNIT`, `# HELP`) or with a sample
//! whose name cannot belong to the family before it; the latter makes a family of type
//! unknown, as OpenMetrics says. [`Families`] remembers every finished family by name
//! (a few dozen in practice), never their series.

use super::syntax::{quote, MetadataKind};
use std::collections::HashMap;
use std::fmt;

/// The type of a metric family, from its `# TYPE` line; `Unknown` without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Unknown,
    Histogram,
    Summary,
    StateSet,
    Info,
    GaugeHistogram,
}

/// Every suffix some type gives its sample names, the empty one first.
const ALL_SUFFIXES: [&str; 9] = [
    "", "_total", "_created", "_count", "_sum", "_bucket", "_gcount", "_gsum", "_info",
];

impl MetricType {
    /// The type named by a `# TYPE` line's last word.
    pub fn from_keyword(word: &str) -> Option<Self> {
        Some(match word {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "unknown" => Self::Unknown,
            "histogram" => Self::Histogram,
            "summary" => Self::Summary,
            "stateset" => Self::StateSet,
            "info" => Self::Info,
            "gaugehistogram" => Self::GaugeHistogram,
            _ => return None,
        })
    }

    /// The word a `# TYPE` line uses for this type.
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Unknown => "unknown",
            Self::Histogram => "histogram",
            Self::Summary => "summary",
            Self::StateSet => "stateset",
            Self::Info => "info",
            Self::GaugeHistogram => "gaugehistogram",
        }
    }

    /// What the names of this type's samples add to the family name: a counter `x` has
    /// samples `x_total` and `x_created`, a gauge `y` has `y`.
    pub fn sample_suffixes(self) -> &'static [&'static str] {
        match self {
            Self::Counter => &["_total", "_created"],
            Self::Gauge | Self::Unknown | Self::StateSet => &[""],
            Self::Info => &["_info"],
            Self::Summary => &["", "_count", "_sum", "_created"],
            Self::Histogram => &["_bucket", "_count", "_sum", "_created"],
            Self::GaugeHistogram => &["_bucket", "_gcount", "_gsum"],
        }
    }

    /// Whether a sample called `sample_name` belongs to a family `family` of this type.
    pub fn allows_sample(self, family: &str, sample_name: &str) -> bool {
        sample_name
            .strip_prefix(family)
            .is_some_and(|suffix| self.sample_suffixes().contains(&suffix))
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// The family whose lines are being read.
#[derive(Debug)]
struct Family {
    name: String,
    metric_type: MetricType,
    first_line: usize,
    /// Whether the family began with a metadata line rather than an untyped sample.
    declared: bool,
    /// Line of the family's `# TYPE`, `# UNIT` and `# HELP`, where present.
    metadata_lines: [Option<usize>; 3],
    first_sample_line: Option<usize>,
}

/// A family that has ended: its lines may not appear again.
#[derive(Debug)]
struct FinishedFamily {
    metric_type: MetricType,
    first_line: usize,
    ended_at_line: usize,
}

/// The current family and the names of those already read.
#[derive(Debug, Default)]
pub(super) struct Families {
    current: Option<Family>,
    finished: HashMap<String, FinishedFamily>,
}

/// What a line did to the current family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FamilyChange {
    /// The line belongs to the family before it.
    Same,
    /// The line began a new family.
    New,
}

impl Families {
    /// Accounts for a `# TYPE`, `# UNIT` or `# HELP` line about `family` on `line`.
    pub(super) fn metadata(
        &mut self,
        kind: MetadataKind,
        family: &str,
        metric_type: Option<MetricType>,
        line: usize,
    ) -> Result<FamilyChange, String> {
        let mut change = FamilyChange::Same;
        let is_current = self
            .current
            .as_ref()
            .is_some_and(|current| current.name == family);
        if !is_current {
            self.check_not_finished(family, line)?;
            if let Some(current) = &self.current {
                if current.metric_type.allows_sample(&current.name, family) {
                    return Err(format!(
                        "family name '{family}' clashes with the samples of {} family '{}' \
                         (line {}); rename one of them",
                        current.metric_type, current.name, current.first_line
                    ));
                }
            }
            self.begin(family, MetricType::Unknown, true, line);
            change = FamilyChange::New;
        }
        let Some(current) = self.current.as_mut() else {
            return Err(format!(
                "internal error: no family after '# {}'",
                kind.keyword()
            ));
        };
        if let Some(sample_line) = current.first_sample_line {
            return Err(format!(
                "'# {} {family}' comes after the family's samples (from line {sample_line}); \
                 metadata lines must precede a family's samples",
                kind.keyword()
            ));
        }
        let slot = &mut current.metadata_lines[kind as usize];
        if let Some(earlier) = *slot {
            return Err(format!(
                "second '# {}' line for family '{family}' (the first is on line {earlier})",
                kind.keyword()
            ));
        }
        *slot = Some(line);
        if let Some(metric_type) = metric_type {
            current.metric_type = metric_type;
        }
        Ok(change)
    }

    /// Finds the family of a sample called `sample_name` on `line`, beginning a family of
    /// type unknown where OpenMetrics says so. Called when the sample's series differs from
    /// the previous sample's; a sample of the same series is in the same family.
    pub(super) fn sample(
        &mut self,
        sample_name: &str,
        line: usize,
    ) -> Result<(MetricType, FamilyChange), String> {
        if let Some(current) = self.current.as_mut() {
            if current
                .metric_type
                .allows_sample(&current.name, sample_name)
            {
                current.first_sample_line.get_or_insert(line);
                return Ok((current.metric_type, FamilyChange::Same));
            }
            // A name that extends the declared family's is far more likely a mistake than a
            // new untyped family that happens to share the prefix.
            let looks_related = sample_name
                .strip_prefix(current.name.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'));
            if current.declared && looks_related {
                let expected: Vec<String> = current
                    .metric_type
                    .sample_suffixes()
                    .iter()
                    .map(|suffix| format!("'{}{suffix}'", current.name))
                    .collect();
                return Err(format!(
                    "sample '{sample_name}' does not belong to {} family '{}' (line {}): its \
                     samples are named {}; if '{sample_name}' is a family of its own, give it \
                     a '# TYPE' line",
                    current.metric_type,
                    current.name,
                    current.first_line,
                    expected.join(" or ")
                ));
            }
        }
        self.check_not_finished(sample_name, line)?;
        self.begin(sample_name, MetricType::Unknown, false, line);
        if let Some(current) = self.current.as_mut() {
            current.first_sample_line = Some(line);
        }
        Ok((MetricType::Unknown, FamilyChange::New))
    }

    /// Refuses `name`, as a family or a sample, when it belongs to a family already ended.
    fn check_not_finished(&self, name: &str, line: usize) -> Result<(), String> {
        for suffix in ALL_SUFFIXES {
            let Some(family) = name.strip_suffix(suffix) else {
                continue;
            };
            let Some(finished) = self.finished.get(family) else {
                continue;
            };
            if suffix.is_empty() || finished.metric_type.sample_suffixes().contains(&suffix) {
                return Err(format!(
                    "{} on line {line} belongs to {} family '{family}', which began on line {} \
                     and ended on line {} when another family began; OpenMetrics forbids \
                     interleaved families: keep each family's lines together",
                    quote(name.as_bytes()),
                    finished.metric_type,
                    finished.first_line,
                    finished.ended_at_line,
                ));
            }
        }
        Ok(())
    }

    fn begin(&mut self, name: &str, metric_type: MetricType, declared: bool, line: usize) {
        if let Some(previous) = self.current.take() {
            self.finished.insert(
                previous.name,
                FinishedFamily {
                    metric_type: previous.metric_type,
                    first_line: previous.first_line,
                    ended_at_line: line,
                },
            );
        }
        self.current = Some(Family {
            name: name.to_owned(),
            metric_type,
            first_line: line,
            declared,
            metadata_lines: [None; 3],
            first_sample_line: None,
        });
    }

    /// The unit line must name a suffix of the family: `# UNIT x_seconds seconds`.
    pub(super) fn check_unit(family: &str, unit: &str) -> Result<(), String> {
        let fits = family
            .strip_suffix(unit)
            .is_some_and(|rest| rest.ends_with('_'));
        if unit.is_empty() || fits {
            Ok(())
        } else {
            Err(format!(
                "unit '{unit}' is not the suffix of family name '{family}'; OpenMetrics requires \
                 the name to end in '_{unit}'"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_allows_exactly_its_sample_names() {
        assert!(MetricType::Counter.allows_sample("x", "x_total"));
        assert!(MetricType::Counter.allows_sample("x", "x_created"));
        assert!(!MetricType::Counter.allows_sample("x", "x"));
        assert!(!MetricType::Counter.allows_sample("x", "x_sum"));
        assert!(MetricType::Gauge.allows_sample("y", "y"));
        assert!(!MetricType::Gauge.allows_sample("y", "y_total"));
        assert!(MetricType::Histogram.allows_sample("h", "h_bucket"));
        assert!(!MetricType::Histogram.allows_sample("h", "h"));
        assert!(MetricType::Summary.allows_sample("s", "s"));
        assert!(MetricType::GaugeHistogram.allows_sample("g", "g_gsum"));
        assert!(MetricType::Info.allows_sample("i", "i_info"));
        assert!(!MetricType::Info.allows_sample("i", "i"));
    }

    #[test]
    fn every_keyword_round_trips() {
        for metric_type in [
            MetricType::Counter,
            MetricType::Gauge,
            MetricType::Unknown,
            MetricType::Histogram,
            MetricType::Summary,
            MetricType::StateSet,
            MetricType::Info,
            MetricType::GaugeHistogram,
        ] {
            assert_eq!(
                MetricType::from_keyword(metric_type.keyword()),
                Some(metric_type)
            );
            for suffix in metric_type.sample_suffixes() {
                assert!(ALL_SUFFIXES.contains(suffix));
            }
        }
    }

    #[test]
    fn a_unit_must_end_the_family_name() {
        assert!(Families::check_unit("x_seconds", "seconds").is_ok());
        assert!(Families::check_unit("x", "").is_ok());
        assert!(Families::check_unit("xseconds", "seconds").is_err());
        assert!(Families::check_unit("x", "seconds")
            .unwrap_err()
            .contains("end in '_seconds'"));
    }
}
