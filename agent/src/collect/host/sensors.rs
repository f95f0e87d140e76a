//! Temperatures: `system_temperature_celsius{sensor}`, one series per sensor the OS exposes
//! (Linux hwmon, Windows WMI thermal zones, macOS SMC). Virtual machines usually have none,
//! and then this family writes nothing; that is not a failure.

use crate::collect::family::FamilyError;
use crate::collect::series::{truncate_to_value_limit, SeriesSink};
use std::collections::HashSet;
use sysinfo::Components;

/// Refreshes every sensor's reading; with `relist`, also re-reads which sensors exist.
pub(super) fn refresh_sensors(components: &mut Components, relist: bool) {
    if relist {
        components.refresh(true);
    } else {
        for component in components.list_mut() {
            component.refresh();
        }
    }
}

/// Writes each sensor that has a reading; sensors without one (absent, or NaN where Linux
/// could not read the file) are skipped rather than reported as a gap-hiding value.
pub(super) fn collect_temperatures(
    components: &Components,
    sink: &mut SeriesSink,
) -> Result<(), FamilyError> {
    let readings: Vec<(&str, Option<&str>, f32)> = components
        .list()
        .iter()
        .filter_map(|component| {
            let celsius = component
                .temperature()
                .filter(|celsius| celsius.is_finite())?;
            Some((component.label(), component.id(), celsius))
        })
        .collect();
    let names = unique_sensor_names(
        &readings
            .iter()
            .map(|(label, id, _)| (*label, *id))
            .collect::<Vec<_>>(),
    );
    for (name, (_, _, celsius)) in names.iter().zip(&readings) {
        sink.push(
            "system_temperature_celsius",
            &[("sensor", name.as_str())],
            f64::from(*celsius),
        );
    }
    Ok(())
}

/// One distinct `sensor` label per sensor, in order. sysinfo's label ("coretemp Core 0",
/// "nvme Composite") is what a technician recognises, but two identical chips give two
/// identical labels; then the sensor's id ("hwmon3_1") tells them apart, and a counter does
/// where there is no id.
pub(super) fn unique_sensor_names(sensors: &[(&str, Option<&str>)]) -> Vec<String> {
    let mut label_counts = std::collections::HashMap::new();
    for (label, _) in sensors {
        *label_counts.entry(label.trim()).or_insert(0usize) += 1;
    }
    let mut taken = HashSet::new();
    let mut names = Vec::with_capacity(sensors.len());
    for (index, (label, id)) in sensors.iter().enumerate() {
        let label = label.trim();
        let base = match (label.is_empty(), id) {
            (true, Some(id)) => id.to_string(),
            (true, None) => format!("sensor {}", index + 1),
            (false, Some(id)) if label_counts[label] > 1 => format!("{label} ({id})"),
            (false, _) => label.to_owned(),
        };
        let mut name = truncate_to_value_limit(&base);
        let mut suffix = 2;
        while !taken.insert(name.clone()) {
            name = truncate_to_value_limit(&format!("{base} #{suffix}"));
            suffix += 1;
        }
        names.push(name);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_labels_are_kept_as_they_are() {
        let names = unique_sensor_names(&[
            ("coretemp Package id 0", Some("hwmon1_1")),
            ("coretemp Core 0", Some("hwmon1_2")),
        ]);
        assert_eq!(names, ["coretemp Package id 0", "coretemp Core 0"]);
    }

    #[test]
    fn identical_labels_are_told_apart_by_id() {
        let names = unique_sensor_names(&[
            ("nvme Composite", Some("hwmon2_1")),
            ("nvme Composite", Some("hwmon3_1")),
        ]);
        assert_eq!(
            names,
            ["nvme Composite (hwmon2_1)", "nvme Composite (hwmon3_1)"]
        );
    }

    #[test]
    fn identical_labels_without_ids_get_a_counter() {
        let names = unique_sensor_names(&[("acpitz", None), ("acpitz", None), ("acpitz", None)]);
        assert_eq!(names, ["acpitz", "acpitz #2", "acpitz #3"]);
    }

    #[test]
    fn sensors_without_a_label_are_still_named() {
        let names = unique_sensor_names(&[("", Some("hwmon0_1")), ("  ", None)]);
        assert_eq!(names, ["hwmon0_1", "sensor 2"]);
    }

    #[test]
    fn names_are_unique_even_when_a_label_collides_with_a_generated_name() {
        let names = unique_sensor_names(&[("", Some("x")), ("x", None), ("x", None)]);
        let distinct: HashSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
    }
}
