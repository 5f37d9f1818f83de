//! A small dated table of what RDS offers: the instance classes we accept (with their memory
//! and list price), Aurora's memory per capacity unit and the PostgreSQL engine versions. moto
//! accepts anything and answers no DescribeOrderableDBInstanceOptions, so the check has to be
//! ours; the spec checks against it and the cost estimate prices from it.

/// When the prices below were taken from AWS's public price list.
pub(crate) const PRICES_AS_OF: &str = "2024-06 (AWS public on-demand prices, us-east-1)";

/// Instance classes with their on-demand price per hour (USD) and memory (GiB).
const CLASSES: &[(&str, f64, f64)] = &[
    ("db.t3.micro", 0.018, 1.0),
    ("db.t3.small", 0.036, 2.0),
    ("db.t3.medium", 0.072, 4.0),
    ("db.t3.large", 0.145, 8.0),
    ("db.t4g.micro", 0.016, 1.0),
    ("db.t4g.small", 0.032, 2.0),
    ("db.t4g.medium", 0.065, 4.0),
    ("db.t4g.large", 0.129, 8.0),
    ("db.m6g.large", 0.159, 8.0),
    ("db.m6i.large", 0.178, 8.0),
    ("db.m7g.large", 0.168, 8.0),
    ("db.r6g.large", 0.225, 16.0),
    ("db.r6g.xlarge", 0.45, 32.0),
    ("db.r7g.large", 0.239, 16.0),
];

/// Memory per Aurora capacity unit.
pub(crate) const GIB_PER_ACU: f64 = 2.0;

/// The on-demand price per hour (USD) of a class we accept.
pub(crate) fn class_hourly_usd(class: &str) -> f64 {
    CLASSES
        .iter()
        .find(|(name, ..)| *name == class)
        .map(|(_, price, _)| *price)
        .unwrap_or(0.0)
}

/// The memory of a class we accept (GiB).
pub(crate) fn class_memory_gib(class: &str) -> f64 {
    CLASSES
        .iter()
        .find(|(name, ..)| *name == class)
        .map(|(.., memory)| *memory)
        .unwrap_or(1.0)
}

/// Engine versions RDS offers for PostgreSQL 14–17 (a dated subset; majors and recent minors).
const ENGINE_VERSIONS: &[&str] = &[
    "14.10", "14.11", "14.12", "14.13", "14.15", "14.17", "15.5", "15.6", "15.7", "15.8", "15.10",
    "15.12", "16.1", "16.2", "16.3", "16.4", "16.6", "16.8", "17.1", "17.2", "17.4",
];

pub(crate) fn check_class(class: &str) -> Result<(), String> {
    if CLASSES.iter().any(|(name, ..)| *name == class) {
        return Ok(());
    }
    let known: Vec<&str> = CLASSES.iter().map(|(name, ..)| *name).collect();
    Err(format!(
        "unknown instance class {class:?}: use one of {} (table as of {PRICES_AS_OF})",
        known.join(", ")
    ))
}

pub(crate) fn check_engine_version(version: &str) -> Result<(), String> {
    if ENGINE_VERSIONS.contains(&version) {
        return Ok(());
    }
    let major = version.split('.').next().unwrap_or_default();
    let same_major: Vec<&str> = ENGINE_VERSIONS
        .iter()
        .copied()
        .filter(|v| v.split('.').next() == Some(major))
        .collect();
    let offer = if same_major.is_empty() {
        ENGINE_VERSIONS.join(", ")
    } else {
        same_major.join(", ")
    };
    Err(format!(
        "unknown PostgreSQL engine version {version:?}: use one of {offer}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_suggested_by_major() {
        let error = check_engine_version("16.99").unwrap_err();
        assert!(error.contains("16.4") && !error.contains("15.5"), "{error}");
    }
}
