//! An estimate of what a spec costs a month, from the catalogue's list prices (AWS's public
//! on-demand prices for us-east-1, single-AZ, PostgreSQL; other regions differ by a few
//! percent). It is an estimate, labelled as such wherever it is shown.

use crate::aws::catalog::{class_hourly_usd, PRICES_AS_OF};
use crate::aws::spec::InstanceSpec;
use dbtools::contract::{CostEstimate, CostLine};

const HOURS_PER_MONTH: f64 = 730.0;
const GP3_GB_MONTH: f64 = 0.115;

/// Aurora Serverless v2 (Aurora Standard): per ACU-hour, and storage per GB-month (I/O, billed
/// per request, is not counted).
const ACU_HOUR: f64 = 0.12;
const AURORA_GB_MONTH: f64 = 0.10;

/// CloudWatch standard-resolution alarm, per alarm-month.
const ALARM_MONTH: f64 = 0.10;

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
            let hourly = class_hourly_usd(&spec.class);
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
