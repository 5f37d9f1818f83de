//! A small dated table: the RDS for PostgreSQL instance classes and engine versions we accept
//! (moto accepts anything and answers no DescribeOrderableDBInstanceOptions, so the check has
//! to be ours), and list prices for an estimate of the monthly cost. Prices are AWS's public
//! on-demand prices for us-east-1, single-AZ, PostgreSQL; other regions differ by a few
//! percent. It is an estimate, labelled as such wherever it is shown.

use crate::aws::spec::InstanceSpec;
use dbtools::contract::{CostEstimate, CostLine};

/// When the prices below were taken from AWS's public price list.
pub(crate) const PRICES_AS_OF: &str = "2024-06 (AWS public on-demand prices, us-east-1)";

const HOURS_PER_MONTH: f64 = 730.0;
const GP3_GB_MONTH: f64 = 0.115;

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

/// Aurora Serverless v2 (Aurora Standard): per ACU-hour, and storage per GB-month (I/O, billed
/// per request, is not counted).
const ACU_HOUR: f64 = 0.12;
const AURORA_GB_MONTH: f64 = 0.10;
/// Memory per Aurora capacity unit.
pub(crate) const GIB_PER_ACU: f64 = 2.0;

/// CloudWatch standard-resolution alarm, per alarm-month.
const ALARM_MONTH: f64 = 0.10;

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

/// What the spec's instances cost a month at list price: instance hours (twice for Multi-AZ)
/// and gp3 storage at its provisioned size; for Aurora Serverless v2 the ACU-hours at the
/// minimum capacity (the floor; the detail says what the maximum would cost) per member and
/// storage at storage_gb; and CloudWatch alarms. Backups within the free allowance, I/O, data
/// transfer and SNS deliveries (free tier) are not counted.
pub(crate) fn estimate(instances: &[InstanceSpec]) -> CostEstimate {
    let lines: Vec<CostLine> = instances.iter().map(cost_line).collect();
    let total = lines.iter().map(|l| l.monthly_usd).sum::<f64>();
    CostEstimate {
        label: "estimate".into(),
        prices_as_of: PRICES_AS_OF.into(),
        monthly_usd: cents(total),
        lines,
    }
}

fn cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0
}

fn cost_line(spec: &InstanceSpec) -> CostLine {
    let alarms = spec.alarms.as_ref().map_or(0, |a| a.count());
    let alarm_cost = alarms as f64 * ALARM_MONTH;
    let alarm_detail = if alarms > 0 {
        format!(" + {alarms} alarms x ${ALARM_MONTH}")
    } else {
        String::new()
    };
    let copies = if spec.multi_az { 2.0 } else { 1.0 };
    let (monthly, detail) = match &spec.serverless {
        Some(range) => {
            let at = |acu: f64| acu * ACU_HOUR * HOURS_PER_MONTH * copies;
            let storage = f64::from(spec.storage_gb) * AURORA_GB_MONTH;
            (
                at(range.min_acu) + storage + alarm_cost,
                format!(
                    "Aurora Serverless v2 at its minimum {} ACU x ${ACU_HOUR}/ACU-h x {HOURS_PER_MONTH} h{} (at its maximum {} ACU: ${:.2}) + {} GB Aurora storage x ${AURORA_GB_MONTH}{alarm_detail}",
                    range.min_acu,
                    if spec.multi_az { " x 2 instances (Multi-AZ)" } else { "" },
                    range.max_acu,
                    cents(at(range.max_acu)),
                    spec.storage_gb,
                ),
            )
        }
        None => {
            let hourly = CLASSES
                .iter()
                .find(|(name, ..)| *name == spec.class)
                .map(|(_, price, _)| *price)
                .unwrap_or(0.0);
            let compute = hourly * HOURS_PER_MONTH * copies;
            let storage = f64::from(spec.storage_gb) * GP3_GB_MONTH * copies;
            (
                compute + storage + alarm_cost,
                format!(
                    "{} ${hourly}/h x {HOURS_PER_MONTH} h{} + {} GB gp3 x ${GP3_GB_MONTH}{alarm_detail}",
                    spec.class,
                    if spec.multi_az { " x 2 (Multi-AZ)" } else { "" },
                    spec.storage_gb,
                ),
            )
        }
    };
    CostLine {
        env: spec.env.clone(),
        id: spec.id.clone(),
        monthly_usd: cents(monthly),
        detail,
    }
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
