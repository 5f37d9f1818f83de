//! A small dated table of what RDS runs: the instance classes we accept (with their memory and
//! list price), Aurora's memory per capacity unit and the PostgreSQL majors of each engine. The
//! spec is checked against it before any call (offline) and the cost estimate prices from it;
//! the exact versions AWS creates new instances on are asked at plan time (`offer.rs`).

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

/// The PostgreSQL majors each engine runs, as of the date given: the offline check of a spec's
/// `engine_version` (a major, or major.minor). Which exact minors AWS creates new instances on
/// changes every few months and is asked at plan time (`offer.rs`), never taken from here.
const MAJORS_AS_OF: &str = "2026-11";
const MAJORS: &[(&str, &[u32], &str)] = &[
    (
        "postgres",
        &[13, 14, 15, 16, 17, 18],
        "https://docs.aws.amazon.com/AmazonRDS/latest/PostgreSQLReleaseNotes/postgresql-release-calendar.html",
    ),
    (
        "aurora-postgresql",
        &[13, 14, 15, 16, 17],
        "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraPostgreSQLReleaseNotes/aurorapostgresql-release-calendar.html",
    ),
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

/// A spec's `engine_version`: a major (`"16"`, the newest minor AWS offers) or major.minor
/// (`"16.9"`), of a major the engine runs.
pub(crate) fn check_engine_version(engine: &str, version: &str) -> Result<(), String> {
    let Some((_, majors, source)) = MAJORS.iter().find(|(name, ..)| *name == engine) else {
        return Ok(());
    };
    let parts: Vec<&str> = version.split('.').collect();
    // Digits without a leading zero: AWS names versions `16.9`, never `016` or `16.09`.
    let numeric = |part: &&str| {
        !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_digit())
            && (*part == "0" || !part.starts_with('0'))
    };
    let shaped = (1..=2).contains(&parts.len()) && parts.iter().all(numeric);
    let major = parts.first().and_then(|m| m.parse::<u32>().ok());
    let list = majors
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if !shaped {
        return Err(format!(
            "engine_version {version:?}: write a major (\"17\": the newest minor AWS offers) or major.minor (\"17.6\")"
        ));
    }
    match major {
        Some(major) if majors.contains(&major) => Ok(()),
        _ => Err(format!(
            "engine_version {version:?}: {engine} runs PostgreSQL {list} (as of {MAJORS_AS_OF}, {source})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_a_major_or_major_minor_of_a_major_the_engine_runs() {
        assert!(check_engine_version("postgres", "16").is_ok());
        assert!(check_engine_version("postgres", "18.1").is_ok());
        let error = check_engine_version("aurora-postgresql", "18").unwrap_err();
        assert!(error.contains("13, 14, 15, 16, 17"), "{error}");
        for bad in ["16.4.1", "v16", "16.", "", "sixteen", "016", "16.09"] {
            let error = check_engine_version("postgres", bad).unwrap_err();
            assert!(error.contains("major.minor"), "{bad}: {error}");
        }
        assert!(check_engine_version("postgres", "12.22")
            .unwrap_err()
            .contains("release-calendar"));
    }
}
