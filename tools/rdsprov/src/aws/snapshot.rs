//! A manual snapshot of an env's target (a cluster snapshot on Aurora), e.g. before a risky
//! migration, waited for until it is available.

use crate::aws::progress::Progress;
use crate::aws::rules;
use crate::aws::target::Target;
use crate::aws::Aws;
use dbtools::contract::{PlanResource, Snapshot};
use dbtools::{Error, Result};

/// Takes snapshot `name` (default `<id>-<UTC timestamp>`) of target `id` and waits for it.
pub(crate) fn snapshot(
    aws: &Aws,
    target: &dyn Target,
    id: &str,
    name: Option<&str>,
    progress: &Progress,
) -> Result<Snapshot> {
    let cluster = target.resource() == PlanResource::DbCluster;
    let snapshot_id = name
        .map(str::to_string)
        .unwrap_or_else(|| rules::snapshot_name(id, &dbtools::time::compact_now(), cluster));
    rules::snapshot_id(&snapshot_id, cluster).map_err(Error::BadInput)?;
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
