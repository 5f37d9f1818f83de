//! A manual snapshot of an env's target (a cluster snapshot on Aurora), e.g. before a risky
//! migration, waited for until it is available.

use crate::aws::progress::Progress;
use crate::aws::target::Target;
use crate::aws::Aws;
use dbtools::contract::Snapshot;
use dbtools::{Error, Result};

/// Takes snapshot `name` (default `<id>-<UTC timestamp>`) of target `id` and waits for it.
pub(crate) fn snapshot(
    aws: &Aws,
    target: &dyn Target,
    id: &str,
    name: Option<&str>,
    progress: &Progress,
) -> Result<Snapshot> {
    let snapshot_id = name
        .map(str::to_string)
        .unwrap_or_else(|| format!("{id}-{}", dbtools::time::compact_now()));
    check_snapshot_id(&snapshot_id)?;
    aws.block_on(target.snapshot(aws, id, &snapshot_id))
        .map_err(|e| e.context(format!("env {}", progress.env)))?;
    let status = progress.wait_for(aws, &format!("snapshot {snapshot_id}"), || async {
        let status = target
            .snapshot_status(aws, &snapshot_id)
            .await?
            .unwrap_or_else(|| "unknown".into());
        if status == "failed" {
            return Err(Error::Failed(format!("snapshot {snapshot_id} failed")));
        }
        Ok(((status == "available").then(|| status.clone()), status))
    })?;
    Ok(Snapshot {
        env: progress.env.to_string(),
        instance: id.to_string(),
        snapshot: snapshot_id,
        status,
    })
}

/// RDS's rule for snapshot ids: 1 to 255 letters, digits and hyphens, starting with a letter,
/// no two hyphens in a row, not ending with one (instance ids have the same rule at 63).
fn check_snapshot_id(id: &str) -> Result<()> {
    let valid = (1..=255).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.contains("--")
        && !id.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(Error::BadInput(format!(
            "snapshot id {id:?}: use 1 to 255 letters, digits and hyphens, starting with a letter, without -- or a trailing -"
        )))
    }
}
