//! The [`Engine`]: binds arriving series to the rules that read them, keeps one alert
//! instance per (rule, host, labels), judges each instance when its samples arrive
//! (thresholds, counters, flapping, creep) or on the evaluation schedule (forecasts,
//! silence, staleness), and reports every state change as a [`Transition`].
//!
//! The engine has no clock and does no I/O: callers pass the time. Live, `now` is the wall
//! clock and samples are observed as they arrive; in backtest, `now` is the time of the
//! samples being replayed. Its whole state is a serde [`Snapshot`], so a collector restart
//! loses no pending time and repeats no alert; it also keeps which hosts changed since the
//! last save, so a live collector writes only their [`HostRecord`]s.

use crate::alert::kinds::{self, silence::Reporting, AlertDetails, KindState, Verdict};
use crate::alert::lifecycle::{Change, Condition, Lifecycle, Phase};
use crate::alert::rule::{FailureKind, Rule, RuleKind, RuleSet, Severity};
use crate::alert::summary;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use vigil_proto::model::{Labels, Sample};

/// Timing the engine applies to every rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineSettings {
    /// A sample older than this on arrival is late (an agent's spool draining): it feeds
    /// histories but opens no alert by itself.
    pub late_after_ms: i64,
    /// After a restore, hosts are not judged silent for this long: the collector was away,
    /// not them.
    pub restart_grace_ms: i64,
    /// How often [`Engine::evaluate`] is meant to be called.
    pub evaluation_interval_ms: i64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            late_after_ms: 120_000,
            restart_grace_ms: 300_000,
            evaluation_interval_ms: 60_000,
        }
    }
}

/// A series known to the engine, for [`Engine::observe_series`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId(u32);

/// Whether an alert started or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Resolved,
}

/// One state change of one alert instance: it fired, its severity rose (reported as firing
/// again with the new severity), or it resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub ts_ms: i64,
    pub host: String,
    pub client: String,
    pub rule: String,
    pub severity: Severity,
    pub state: AlertState,
    pub summary: String,
    /// The labels that tell this instance apart (mountpoint, device, service …).
    pub labels: Labels,
    pub category: Option<FailureKind>,
    /// When the condition began (ms since the epoch): a contract's `lasting` counts from
    /// here. Transitions saved before it existed read 0, meaning "when it fired".
    #[serde(default)]
    pub began_ms: i64,
    /// The numbers behind the condition (value and level, forecast); empty on a resolve.
    #[serde(default)]
    pub details: AlertDetails,
}

/// An alert instance that is pending or firing, for listings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenAlert {
    pub rule: String,
    pub host: String,
    pub labels: Labels,
    pub firing: bool,
    pub severity: Option<Severity>,
    pub summary: Option<String>,
    pub acknowledged_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct InstanceKey {
    rule: usize,
    host: String,
    labels: Labels,
}

/// Series related to an instance's own (its limit, its reference, a host-level companion
/// metric), found once and remembered.
#[derive(Debug, Clone, Default)]
struct Links {
    denominator: Option<SeriesId>,
    reference: Option<SeriesId>,
    companion: Option<SeriesId>,
    /// The full labels of the instance's own series, to derive the related ones from.
    own_labels: Option<Labels>,
}

#[derive(Debug, Clone)]
struct Instance {
    key: InstanceKey,
    client: String,
    state: KindState,
    life: Lifecycle,
    links: Links,
}

#[derive(Debug, Clone)]
struct SeriesEntry {
    name: String,
    labels: Labels,
    host: usize,
    last: Option<Sample>,
    /// Instances that read this series.
    bindings: Vec<usize>,
}

#[derive(Debug, Clone)]
struct HostEntry {
    name: String,
    client: String,
    last_seen_ms: Option<i64>,
    interval_ms: i64,
    offline: bool,
    /// When it said it was going down for a reboot (and has not reported since).
    rebooting_since_ms: Option<i64>,
    /// Its instances of host-silence rules.
    silence: Vec<usize>,
}

impl HostEntry {
    fn reporting(&self) -> Option<Reporting> {
        Some(Reporting {
            last_seen_ms: self.last_seen_ms?,
            interval_ms: self.interval_ms,
            offline: self.offline,
            rebooting_since_ms: self.rebooting_since_ms,
        })
    }
}

/// Labels that split one quantity into parts (`state="used"`, `direction="receive"`)
/// rather than name an object: they never tell alert instances apart.
const PART_LABELS: [&str; 2] = ["state", "direction"];

/// Sampling interval assumed until a host's own is measured.
const DEFAULT_INTERVAL_MS: i64 = 60_000;

/// The alert engine. See the module documentation.
#[derive(Debug)]
pub struct Engine {
    rules: RuleSet,
    settings: EngineSettings,
    series: Vec<SeriesEntry>,
    /// By name, then labels: looked up without allocating, once per arriving sample.
    series_ids: HashMap<String, HashMap<Labels, SeriesId>>,
    instances: Vec<Instance>,
    instance_ids: HashMap<InstanceKey, usize>,
    hosts: Vec<HostEntry>,
    host_ids: HashMap<String, usize>,
    /// Hosts are not judged silent before this time.
    grace_until_ms: i64,
    /// Forecast horizons (warn, critical) a client's contract sets, by client; `""` for
    /// every client without one of its own. They replace the forecast rules' own.
    forecast_horizons: HashMap<String, (std::time::Duration, std::time::Duration)>,
    /// Hosts (by name; `""` for site alerts) whose saved record is out of date by new
    /// samples only: see [`Engine::take_changed`].
    dirty: HashSet<String>,
    /// Hosts whose alert lifecycles changed (or that said goodbye, or had an alert
    /// acknowledged): their records are saved before the transition goes out.
    urgent: HashSet<String>,
}

impl Engine {
    pub fn new(rules: RuleSet) -> Self {
        Self::with_settings(rules, EngineSettings::default())
    }

    pub fn with_settings(rules: RuleSet, settings: EngineSettings) -> Self {
        Self {
            rules,
            settings,
            series: Vec::new(),
            series_ids: HashMap::new(),
            instances: Vec::new(),
            instance_ids: HashMap::new(),
            hosts: Vec::new(),
            host_ids: HashMap::new(),
            grace_until_ms: i64::MIN,
            forecast_horizons: HashMap::new(),
            dirty: HashSet::new(),
            urgent: HashSet::new(),
        }
    }

    /// Sets the forecast horizons of `client`'s contract (`None`: the rules' own), or of
    /// every client without its own when `client` is empty.
    pub fn set_forecast_horizons(
        &mut self,
        client: &str,
        horizons: Option<(std::time::Duration, std::time::Duration)>,
    ) {
        match horizons {
            Some(horizons) => self.forecast_horizons.insert(client.to_owned(), horizons),
            None => self.forecast_horizons.remove(client),
        };
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// The id of the series `name{labels}` (labels include `host` and `client`), binding it
    /// to the rules that read it on first sight.
    pub fn series_id(&mut self, name: &str, labels: &Labels) -> SeriesId {
        if let Some(&id) = self
            .series_ids
            .get(name)
            .and_then(|by_labels| by_labels.get(labels))
        {
            return id;
        }
        let id = SeriesId(self.series.len() as u32);
        let host = self.host_index(
            labels.get("host").unwrap_or_default(),
            labels.get("client").unwrap_or_default(),
        );
        self.series.push(SeriesEntry {
            name: name.to_owned(),
            labels: labels.clone(),
            host,
            last: None,
            bindings: Vec::new(),
        });
        self.series_ids
            .entry(name.to_owned())
            .or_default()
            .insert(labels.clone(), id);
        for rule_index in 0..self.rules.rules.len() {
            let rule = &self.rules.rules[rule_index];
            let Some(signal) = rule.kind.signal() else {
                continue;
            };
            if !signal.matches(name, labels) {
                continue;
            }
            let mut instance_labels = Labels::new();
            for (label, value) in labels.iter() {
                if !["host", "client"].contains(&label) && !PART_LABELS.contains(&label) {
                    instance_labels.insert(label, value);
                }
            }
            let instance = self.instance_index(rule_index, host, instance_labels);
            if self.instances[instance].links.own_labels.is_none() {
                self.instances[instance].links.own_labels = Some(labels.clone());
            }
            self.series[id.0 as usize].bindings.push(instance);
        }
        id
    }

    fn host_index(&mut self, name: &str, client: &str) -> usize {
        if let Some(&index) = self.host_ids.get(name) {
            return index;
        }
        let index = self.hosts.len();
        self.hosts.push(HostEntry {
            name: name.to_owned(),
            client: client.to_owned(),
            last_seen_ms: None,
            interval_ms: DEFAULT_INTERVAL_MS,
            offline: false,
            rebooting_since_ms: None,
            silence: Vec::new(),
        });
        self.host_ids.insert(name.to_owned(), index);
        for rule_index in 0..self.rules.rules.len() {
            if matches!(self.rules.rules[rule_index].kind, RuleKind::HostSilent(_)) {
                let instance = self.instance_index(rule_index, index, Labels::new());
                self.hosts[index].silence.push(instance);
            }
        }
        index
    }

    fn instance_index(&mut self, rule: usize, host: usize, labels: Labels) -> usize {
        let key = InstanceKey {
            rule,
            host: self.hosts[host].name.clone(),
            labels,
        };
        if let Some(&index) = self.instance_ids.get(&key) {
            return index;
        }
        let index = self.instances.len();
        self.instances.push(Instance {
            key: key.clone(),
            client: self.hosts[host].client.clone(),
            state: KindState::new(&self.rules.rules[rule].kind),
            life: Lifecycle::default(),
            links: Links::default(),
        });
        self.instance_ids.insert(key, index);
        index
    }

    /// Observes one sample that arrives now; `labels` carry `__name__`, `host` and `client`.
    pub fn observe(&mut self, labels: &Labels, sample: Sample) -> Vec<Transition> {
        let name = labels.get("__name__").unwrap_or_default().to_owned();
        let series_labels =
            Labels::from_pairs(labels.iter().filter(|(label, _)| *label != "__name__"));
        let id = self.series_id(&name, &series_labels);
        let mut out = Vec::new();
        self.observe_series(id, sample, sample.timestamp_ms, &mut out);
        out
    }

    /// Observes one sample of a known series that arrived at `arrival_ms`, appending the
    /// state changes it causes to `out`.
    pub fn observe_series(
        &mut self,
        id: SeriesId,
        sample: Sample,
        arrival_ms: i64,
        out: &mut Vec<Transition>,
    ) {
        let index = id.0 as usize;
        self.mark_host(self.series[index].host);
        if !sample.value.is_finite() {
            // NaN or ±Inf: the host reports (it is not silent), but the value says nothing
            // about the condition a rule watches (a failed sensor, a division by zero).
            // Judging it would raise false alarms, and trends would become NaN.
            let host = self.series[index].host;
            self.host_arrival(host, arrival_ms, out);
            return;
        }
        let entry = &mut self.series[index];
        if entry
            .last
            .is_none_or(|last| sample.timestamp_ms >= last.timestamp_ms)
        {
            entry.last = Some(sample);
        }
        let host = entry.host;
        self.host_arrival(host, arrival_ms, out);
        let late = arrival_ms - sample.timestamp_ms > self.settings.late_after_ms;
        for binding in 0..self.series[index].bindings.len() {
            let instance = self.series[index].bindings[binding];
            let verdict = self.observe_instance(instance, index, sample, arrival_ms);
            if let (Some(verdict), false) = (verdict, late) {
                self.step(instance, sample.timestamp_ms, verdict, out);
            }
        }
    }

    /// A host sent something at `arrival_ms`: it is not silent, and not offline.
    fn host_arrival(&mut self, host: usize, arrival_ms: i64, out: &mut Vec<Transition>) {
        let entry = &mut self.hosts[host];
        entry.offline = false;
        entry.rebooting_since_ms = None;
        match entry.last_seen_ms {
            Some(last) if arrival_ms > last => {
                let gap = (arrival_ms - last).clamp(1_000, 3_600_000);
                entry.interval_ms = (entry.interval_ms * 9 + gap) / 10;
                entry.last_seen_ms = Some(arrival_ms);
            }
            Some(_) => return,
            None => entry.last_seen_ms = Some(arrival_ms),
        }
        for silence in 0..self.hosts[host].silence.len() {
            let instance = self.hosts[host].silence[silence];
            if self.instances[instance].life.is_firing() {
                self.step(instance, arrival_ms, None, out);
            }
        }
    }

    /// Feeds a sample to one instance; `Some(verdict)` when the kind judges on samples.
    fn observe_instance(
        &mut self,
        instance: usize,
        series: usize,
        sample: Sample,
        now_ms: i64,
    ) -> Option<Option<Verdict>> {
        let rule_index = self.instances[instance].key.rule;
        let firing = self.instances[instance].life.is_firing();
        let value = sample.value;
        let ts = sample.timestamp_ms;
        match &self.rules.rules[rule_index].kind {
            RuleKind::Threshold(rule) => {
                let rule = rule.clone();
                let value = self.signal_value(instance, &rule.signal.divide_by, value)?;
                let KindState::Threshold(state) = &mut self.instances[instance].state else {
                    return None;
                };
                Some(kinds::threshold::judge(&rule, state, ts, value, firing))
            }
            RuleKind::Forecast(rule) => {
                let rule = rule.clone();
                let value = self.signal_value(instance, &rule.signal.divide_by, value)?;
                let KindState::Forecast(state) = &mut self.instances[instance].state else {
                    return None;
                };
                kinds::forecast::observe(&rule, state, ts, value);
                None
            }
            RuleKind::Change(rule) => {
                let rule = rule.clone();
                let metric = self.series[series].name.clone();
                let KindState::Change(state) = &mut self.instances[instance].state else {
                    return None;
                };
                kinds::change::observe(state, &metric, ts, value);
                Some(kinds::change::judge(&rule, state, ts))
            }
            RuleKind::Staleness(rule) => {
                let rule = rule.clone();
                let KindState::Staleness(state) = &mut self.instances[instance].state else {
                    return None;
                };
                kinds::staleness::observe(state, value);
                Some(kinds::staleness::judge(&rule, state, ts))
            }
            RuleKind::Flapping(rule) => {
                let rule = rule.clone();
                let KindState::Flapping(state) = &mut self.instances[instance].state else {
                    return None;
                };
                kinds::flapping::observe(state, ts, value);
                Some(kinds::flapping::judge(&rule, state, ts))
            }
            RuleKind::Creep(rule) => {
                let rule = rule.clone();
                let reference = match &rule.relative_to {
                    Some(_) => self.related_value(instance, Related::Reference, ts),
                    None => None,
                };
                let explaining = match &rule.explained_by {
                    Some(_) => self.related_value(instance, Related::HostCompanion, ts),
                    None => None,
                };
                let relative = value - reference.unwrap_or(0.0);
                let KindState::Creep(state) = &mut self.instances[instance].state else {
                    return None;
                };
                kinds::creep::observe(&rule, state, ts, value, relative, explaining.unwrap_or(0.0))
            }
            RuleKind::SeriesSilent(rule) => {
                let rule = rule.clone();
                let reporting = self.hosts[self.series[series].host].reporting();
                let KindState::SeriesSilent(state) = &mut self.instances[instance].state else {
                    return None;
                };
                state.observe(ts);
                let reporting = reporting?;
                Some(kinds::silence::judge_series(
                    &rule, state, &reporting, now_ms,
                ))
            }
            RuleKind::HostSilent(_) => None,
        }
    }

    /// Adds the `context` of a forecast rule (swap in use, for memory) to its verdict.
    fn with_context(
        &mut self,
        instance: usize,
        rule: &crate::alert::rule::Forecast,
        mut verdict: Verdict,
        now_ms: i64,
    ) -> Verdict {
        let context = match &rule.context {
            Some(metric) => self
                .related_value(instance, Related::HostCompanion, now_ms)
                .map(|value| {
                    let name = metric
                        .trim_start_matches("system_")
                        .trim_end_matches("_bytes")
                        .replace('_', " ");
                    format!("; {name} {}", summary::bytes(value))
                }),
            None => None,
        };
        verdict.vars.push(("context", context.unwrap_or_default()));
        verdict
    }

    /// The signal's value: `value` itself, or divided by the latest sample of the
    /// `divide_by` metric of the same host, client and instance labels.
    fn signal_value(
        &mut self,
        instance: usize,
        divide_by: &Option<String>,
        value: f64,
    ) -> Option<f64> {
        if divide_by.is_none() {
            return Some(value);
        }
        let denominator = self.related_value(instance, Related::Denominator, i64::MAX)?;
        (denominator > 0.0).then(|| value / denominator)
    }

    /// Latest value of a series related to `instance`, if it has reported within the last
    /// 15 minutes before `now_ms`.
    fn related_value(&mut self, instance: usize, related: Related, now_ms: i64) -> Option<f64> {
        let cached = match related {
            Related::Denominator => self.instances[instance].links.denominator,
            Related::Reference => self.instances[instance].links.reference,
            Related::HostCompanion => self.instances[instance].links.companion,
        };
        let id = match cached {
            Some(id) => id,
            None => {
                let (name, labels) = self.related_key(instance, related)?;
                let id = *self.series_ids.get(&name)?.get(&labels)?;
                let links = &mut self.instances[instance].links;
                match related {
                    Related::Denominator => links.denominator = Some(id),
                    Related::Reference => links.reference = Some(id),
                    Related::HostCompanion => links.companion = Some(id),
                }
                id
            }
        };
        let last = self.series[id.0 as usize].last?;
        (now_ms == i64::MAX || now_ms - last.timestamp_ms <= 900_000).then_some(last.value)
    }

    fn related_key(&self, instance: usize, related: Related) -> Option<(String, Labels)> {
        let inst = &self.instances[instance];
        let rule = &self.rules.rules[inst.key.rule];
        let own = inst.links.own_labels.as_ref()?;
        let mut base = inst.key.labels.clone();
        base.insert("host", inst.key.host.clone());
        base.insert("client", inst.client.clone());
        match (&rule.kind, related) {
            (kind, Related::Denominator) => {
                let name = kind.signal()?.divide_by.clone()?;
                Some((name, base))
            }
            (RuleKind::Creep(creep), Related::Reference) => {
                let mut labels = own.clone();
                for (label, value) in creep.relative_to.as_ref()?.iter() {
                    labels.insert(label, value);
                }
                Some((creep.signal.metrics.first()?.clone(), labels))
            }
            (kind, Related::HostCompanion) => {
                let name = match kind {
                    RuleKind::Creep(creep) => creep.explained_by.clone()?,
                    RuleKind::Forecast(forecast) => forecast.context.clone()?,
                    _ => return None,
                };
                let labels = Labels::from_pairs([
                    ("host", inst.key.host.as_str()),
                    ("client", inst.client.as_str()),
                ]);
                Some((name, labels))
            }
            _ => None,
        }
    }

    /// Judges every instance whose rule runs on the schedule: forecasts, silence,
    /// staleness, and the expiry of counter and flapping events. Call every
    /// [`EngineSettings::evaluation_interval_ms`].
    pub fn evaluate(&mut self, now_ms: i64) -> Vec<Transition> {
        let mut out = Vec::new();
        let site_silent = self.judge_sites(now_ms, &mut out);
        for instance in 0..self.instances.len() {
            let rule_index = self.instances[instance].key.rule;
            let firing = self.instances[instance].life.is_firing();
            let pending_ms = self.rules.rules[rule_index].pending_for.as_millis() as i64;
            let verdict = match &self.rules.rules[rule_index].kind {
                RuleKind::Forecast(rule) => {
                    let mut rule = rule.clone();
                    let client = &self.instances[instance].client;
                    if let Some(&(warn, critical)) = self
                        .forecast_horizons
                        .get(client)
                        .or_else(|| self.forecast_horizons.get(""))
                    {
                        rule.warn_horizon = warn;
                        rule.critical_horizon = critical;
                    }
                    let KindState::Forecast(state) = &mut self.instances[instance].state else {
                        continue;
                    };
                    let verdict =
                        kinds::forecast::evaluate(&rule, state, now_ms, firing, pending_ms);
                    verdict.map(|verdict| self.with_context(instance, &rule, verdict, now_ms))
                }
                RuleKind::Change(rule) => {
                    let rule = rule.clone();
                    let KindState::Change(state) = &mut self.instances[instance].state else {
                        continue;
                    };
                    kinds::change::judge(&rule, state, now_ms)
                }
                RuleKind::Staleness(rule) => {
                    let KindState::Staleness(state) = &self.instances[instance].state else {
                        continue;
                    };
                    kinds::staleness::judge(rule, state, now_ms)
                }
                RuleKind::Flapping(rule) => {
                    let rule = rule.clone();
                    let KindState::Flapping(state) = &mut self.instances[instance].state else {
                        continue;
                    };
                    kinds::flapping::judge(&rule, state, now_ms)
                }
                RuleKind::SeriesSilent(rule) => {
                    let KindState::SeriesSilent(state) = &self.instances[instance].state else {
                        continue;
                    };
                    let host = self.host_ids.get(&self.instances[instance].key.host);
                    match host.and_then(|&h| self.hosts[h].reporting()) {
                        Some(reporting) => {
                            kinds::silence::judge_series(rule, state, &reporting, now_ms)
                        }
                        None => None,
                    }
                }
                RuleKind::HostSilent(rule) => {
                    let host_name = &self.instances[instance].key.host;
                    if host_name.is_empty() {
                        // Site instances were judged above.
                        continue;
                    }
                    let host = self.host_ids.get(host_name).copied();
                    match host.and_then(|h| self.hosts[h].reporting()) {
                        Some(_) if now_ms < self.grace_until_ms => None,
                        Some(_) if host.is_some_and(|h| site_silent.contains(&h)) => None,
                        Some(reporting) => kinds::silence::judge_host(rule, &reporting, now_ms),
                        None => None,
                    }
                }
                RuleKind::Threshold(_) | RuleKind::Creep(_) => continue,
            };
            self.step(instance, now_ms, verdict, &mut out);
        }
        out
    }

    /// Steps an instance's lifecycle with a verdict and reports the change, if any.
    fn step(
        &mut self,
        instance: usize,
        now_ms: i64,
        verdict: Option<Verdict>,
        out: &mut Vec<Transition>,
    ) {
        let rule = &self.rules.rules[self.instances[instance].key.rule];
        let condition = verdict.map(|verdict| self.condition(instance, rule, verdict));
        let clear_for_ms = rule.clear_for.as_millis() as i64;
        let began_before = self.instances[instance].life.began_ms();
        let life_before = self.instances[instance].life.clone();
        let change = self.instances[instance]
            .life
            .step(now_ms, condition.as_ref(), clear_for_ms);
        if self.instances[instance].life != life_before {
            self.mark_instance(instance);
        }
        if let Some(change) = change {
            let began_ms = self.instances[instance]
                .life
                .began_ms()
                .or(began_before)
                .unwrap_or(now_ms);
            let details = condition.map(|c| c.details).unwrap_or_default();
            out.push(self.transition(instance, now_ms, change, began_ms, details));
        }
    }

    fn condition(&self, instance: usize, rule: &Rule, verdict: Verdict) -> Condition {
        let inst = &self.instances[instance];
        let mut vars: Vec<(&str, String)> = vec![
            ("host", inst.key.host.clone()),
            ("client", inst.client.clone()),
            ("rule", rule.name.clone()),
            (
                "for",
                summary::duration(rule.pending_for.as_millis() as f64),
            ),
        ];
        for (label, value) in inst.key.labels.iter() {
            vars.push((label, value.to_owned()));
        }
        vars.extend(verdict.vars.iter().map(|(n, v)| (*n, v.clone())));
        Condition {
            severity: verdict.severity,
            summary: summary::render(&rule.summary, &vars),
            pending_for_ms: verdict
                .pending_for_ms
                .unwrap_or(rule.pending_for.as_millis() as i64),
            details: verdict.details,
            began_ms: verdict.began_ms,
        }
    }

    fn transition(
        &self,
        instance: usize,
        now_ms: i64,
        change: Change,
        began_ms: i64,
        details: AlertDetails,
    ) -> Transition {
        let inst = &self.instances[instance];
        let rule = &self.rules.rules[inst.key.rule];
        let (state, severity, summary) = match change {
            Change::Fired { severity, summary } | Change::Escalated { severity, summary } => {
                (AlertState::Firing, severity, summary)
            }
            Change::Resolved { severity, summary } => (AlertState::Resolved, severity, summary),
        };
        Transition {
            ts_ms: now_ms,
            host: inst.key.host.clone(),
            client: inst.client.clone(),
            rule: rule.name.clone(),
            severity,
            state,
            summary,
            labels: inst.key.labels.clone(),
            category: rule.category,
            began_ms,
            details,
        }
    }

    /// A host announced a clean shutdown, sleep or reboot: until it reports again it is
    /// offline, and its silence is not an alert — except after a reboot (`rebooting_at_ms`)
    /// from which it does not come back within the rule's `reboot_grace`.
    pub fn host_goodbye(&mut self, host: &str, rebooting_at_ms: Option<i64>) {
        if let Some(&index) = self.host_ids.get(host) {
            self.hosts[index].offline = true;
            self.hosts[index].rebooting_since_ms = rebooting_at_ms;
            let name = self.hosts[index].name.clone();
            self.urgent.insert(name);
        }
    }

    /// Records that a person acknowledged the firing alert of `rule` on `host` with
    /// `labels`. Returns whether there was such an alert.
    pub fn acknowledge(
        &mut self,
        rule: &str,
        host: &str,
        labels: &Labels,
        by: &str,
        now_ms: i64,
    ) -> bool {
        let Some(rule) = self.rules.position(rule) else {
            return false;
        };
        let key = InstanceKey {
            rule,
            host: host.to_owned(),
            labels: labels.clone(),
        };
        match self.instance_ids.get(&key) {
            Some(&instance) => {
                let acknowledged = self.instances[instance].life.acknowledge(by, now_ms);
                self.mark_instance(instance);
                acknowledged
            }
            None => false,
        }
    }

    /// The summary of the firing alert of `rule` on `host` with `labels` as it reads now (a
    /// silence's length, a forecast's time left move on after the alert fired).
    pub fn firing_summary(&self, rule: &str, host: &str, labels: &Labels) -> Option<String> {
        let key = InstanceKey {
            rule: self.rules.position(rule)?,
            host: host.to_owned(),
            labels: labels.clone(),
        };
        match &self.instances[*self.instance_ids.get(&key)?].life.phase {
            Phase::Firing { summary, .. } => Some(summary.clone()),
            _ => None,
        }
    }

    /// Alerts that are pending or firing.
    pub fn open_alerts(&self) -> Vec<OpenAlert> {
        self.instances
            .iter()
            .filter_map(|inst| {
                let rule = &self.rules.rules[inst.key.rule];
                let (firing, severity, summary, acknowledged_by) = match &inst.life.phase {
                    Phase::Inactive => return None,
                    Phase::Pending { .. } => (false, None, None, None),
                    Phase::Firing {
                        severity,
                        summary,
                        acknowledged,
                        ..
                    } => (
                        true,
                        Some(*severity),
                        Some(summary.clone()),
                        acknowledged.as_ref().map(|a| a.by.clone()),
                    ),
                };
                Some(OpenAlert {
                    rule: rule.name.clone(),
                    host: inst.key.host.clone(),
                    labels: inst.key.labels.clone(),
                    firing,
                    severity,
                    summary,
                    acknowledged_by,
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
enum Related {
    Denominator,
    Reference,
    /// A host-level metric read alongside: CPU utilization for creep, swap for memory.
    HostCompanion,
}

mod forget;
mod partition;
mod records;
mod sites;
mod snapshot;
#[cfg(test)]
mod tests;

pub use forget::Forgotten;
pub use partition::{Observed, Partitioned};
pub use records::HostRecord;
pub use snapshot::{HostSnapshot, InstanceSnapshot, SeriesSnapshot, Snapshot};
