//! `rdsprov stamps` (the database stamps an AWS instance's tags record, with its endpoint) and
//! `rdsprov stamp-record` (the stamp on stdin becomes such a tag): see `aws::stamps`.

use super::common::region_or_environment;
use crate::aws::Aws;
use dbtools::contract;
use dbtools::output::{self, Output};
use dbtools::{Error, ExitStatus, Result};

/// `rdsprov stamps`: what the instance's tags record (see `aws::stamps`).
pub(super) fn show(out: Output, instance: &str, region: Option<&str>) -> Result<ExitStatus> {
    dbtools::names::check_instance_id(instance)?;
    let aws = Aws::connect(&region_or_environment(region, "stamps")?)?;
    let (endpoint, stamps) = crate::aws::stamps::recorded_with_endpoint(&aws, instance)?
        .ok_or_else(|| {
            Error::BadInput(format!(
                "no RDS instance or Aurora cluster {instance} in {}",
                aws.region
            ))
        })?;
    let recorded = contract::RecordedStamps {
        instance: instance.to_string(),
        endpoint,
        stamps: stamps
            .into_iter()
            .map(|(database, stamp)| contract::DatabaseStamp { database, stamp })
            .collect(),
    };
    out.emit(&recorded, || {
        let rows: Vec<Vec<String>> = recorded
            .stamps
            .iter()
            .map(|s| {
                vec![
                    s.database.clone(),
                    s.stamp.env.clone(),
                    s.stamp.protection.as_str().to_string(),
                ]
            })
            .collect();
        output::table(&["DATABASE", "ENV", "PROTECTION"], &rows)
    })?;
    Ok(ExitStatus::Success)
}

/// `rdsprov stamp-record`: the stamp on stdin becomes a tag on the instance (see
/// `aws::stamps`). Prints nothing on success: the caller already reports the stamp.
pub(super) fn record(instance: &str, database: &str, region: Option<&str>) -> Result<ExitStatus> {
    dbtools::names::check_instance_id(instance)?;
    dbtools::names::check_sql_name(database, "database name")?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
        .map_err(|e| Error::BadInput(format!("cannot read the stamp on stdin: {e}")))?;
    // UTF-8 with or without a byte-order mark, or UTF-16 with one (Windows PowerShell).
    let text = dbtools::contract::decode_text(&bytes)?;
    let recorded: dbtools::contract::RecordedStamp =
        serde_json::from_str(text.trim()).map_err(|e| {
            Error::BadInput(format!(
                "stamp-record: stdin is no stamp ({{\"env\",\"protection\",\"nonce\"}}): {e}"
            ))
        })?;
    dbtools::names::check_env_name(&recorded.env)?;
    if recorded.nonce.is_empty() || !recorded.nonce.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::BadInput(
            "stamp-record: the nonce must be hex digits".into(),
        ));
    }
    let aws = Aws::connect(&region_or_environment(region, "stamp-record")?)?;
    crate::aws::stamps::record(&aws, instance, database, &recorded)?;
    Ok(ExitStatus::Success)
}
