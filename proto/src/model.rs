//! Domain types shared by the agent and the collector. They carry no wire details: a value
//! of these types coming from the network has already passed [`crate::convert`]'s checks.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One measurement: milliseconds since the Unix epoch and a value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub timestamp_ms: i64,
    pub value: f64,
}

/// Label pairs sorted by name, each name once. Sorting makes equal sets compare and hash
/// equal, so a set of labels can key a series.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

/// In JSON a label set is an object, `{"mountpoint": "/", "state": "used"}`.
impl Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, String>::deserialize(deserializer)?;
        Ok(Self(map.into_iter().collect()))
    }
}

impl Labels {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from pairs in any order; a later pair with the same name replaces an
    /// earlier one.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut labels = Self::new();
        for (name, value) in pairs {
            labels.insert(name, value);
        }
        labels
    }

    /// Sets `name` to `value`, replacing any earlier value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(index) => self.0[index].1 = value,
            Err(index) => self.0.insert(index, (name, value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|index| self.0[index].1.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Labels {
    /// Prometheus style: `{mountpoint="/",state="used"}`, or nothing when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str("{")?;
        for (index, (name, value)) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{name}={value:?}")?;
        }
        f.write_str("}")
    }
}

/// A metric's samples for one label set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// What an agent sends per tick. `seq` increases by one per batch within one spool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub seq: u64,
    pub series: Vec<Series>,
    /// The newest matched line per watched log and pattern since the previous batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_excerpts: Vec<LogExcerpt>,
}

/// A log line that matched a watched pattern: what the `log_matches_total{log,pattern}`
/// series counted, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogExcerpt {
    pub log: String,
    pub pattern: String,
    pub file: String,
    pub line: String,
    pub timestamp_ms: i64,
}

impl LogExcerpt {
    /// A log line as a message may show it: control characters (terminal escapes, tabs, line
    /// breaks) made spaces, so that no line can break a message's layout. The agent cleans
    /// what it sends with this, and the collector again what it receives.
    pub fn printable(line: &str) -> String {
        line.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    }
}

impl Batch {
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|series| series.samples.len()).sum()
    }
}

/// A disk or filesystem as the inventory lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    pub mountpoint: String,
    pub device: String,
    pub filesystem: String,
    pub total_bytes: u64,
}

/// What a machine is, sent at each connect and kept per host by the collector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub hostname: String,
    pub os_name: String,
    pub os_version: String,
    pub kernel_version: String,
    pub architecture: String,
    pub cpu_model: String,
    pub cpu_cores: u32,
    pub memory_bytes: u64,
    pub disks: Vec<Disk>,
    pub agent_version: String,
    pub boot_time_unix_seconds: i64,
}

/// The first message of every stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub inventory: Inventory,
    pub spool_id: u64,
    pub interval_seconds: u32,
    /// The sequence number the spool gives its next batch; 0 when an older agent did not
    /// say.
    pub next_seq: u64,
}

/// Why an agent is going away on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoodbyeReason {
    Unspecified,
    Shutdown,
    Reboot,
    Sleep,
    ServiceStop,
}

/// Agent → collector.
// A hello is sent once per stream and lives for one match: boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AgentMessage {
    Hello(Hello),
    Batch(Batch),
    Goodbye(GoodbyeReason),
}

/// Settings the collector pushes to an agent. Data only: nothing here makes the agent run
/// anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfig {
    pub interval_seconds: u32,
}

/// Collector → agent.
#[derive(Debug, Clone, PartialEq)]
pub enum CollectorMessage {
    /// Every batch up to and including `seq` is durable.
    Ack {
        seq: u64,
    },
    /// Batch `seq` is refused for good; resending will not help.
    Reject {
        seq: u64,
        reason: String,
    },
    Config(AgentConfig),
    /// The collector holds more of this spool than the spool says it ever made (restored
    /// state folder, reverted snapshot, cloned machine): start a new spool and resend.
    SpoolConflict(SpoolConflict),
}

/// What the collector saw when it refused a spool's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolConflict {
    pub spool_id: u64,
    /// The newest seq the collector stored for this spool.
    pub stored_seq: u64,
    /// The next seq the agent said it would use.
    pub next_seq: u64,
}
