//! The stamps of an AWS instance's databases as the instance's owner records them: one tag per
//! database on the RDS instance (or Aurora cluster), `dbtools:stamp:<database>` =
//! `<env>:<protection>:<nonce>` (`dbtools::owner`). They decide what a destroy puts at risk
//! when the databases cannot be read from here, and a restored instance does not carry them
//! (rdsprov gives a restore its own tags), so its databases count as copies.
//!
//! Tag limits (RDS `Tag` data type, AWS RDS API Reference): key up to 128 Unicode characters,
//! value up to 256, 50 tags per resource. A database name is at most 63 bytes and a nonce 32
//! hex digits, so a key and a value always fit.

use crate::aws::{code, describe, Aws};
use dbtools::contract::{Endpoint, RecordedStamp};
use dbtools::{owner, Error, Result};

/// What AWS says of instance or cluster `id` (an Aurora env's id names its cluster): its ARN,
/// tags and endpoint.
struct Found {
    arn: String,
    tags: Vec<aws_sdk_rds::types::Tag>,
    endpoint: Option<Endpoint>,
}

fn arn_of(aws: &Aws, id: &str) -> Result<Option<Found>> {
    match aws.block_on(
        aws.rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send(),
    ) {
        Ok(found) => {
            if let Some(instance) = found.db_instances().first() {
                return Ok(Some(Found {
                    arn: instance.db_instance_arn().unwrap_or_default().to_string(),
                    tags: instance.tag_list().to_vec(),
                    endpoint: instance.endpoint().and_then(|e| {
                        Some(Endpoint {
                            host: e.address()?.to_string(),
                            port: u16::try_from(e.port()?).ok()?,
                        })
                    }),
                }));
            }
        }
        Err(e) if code(&e) == Some("DBInstanceNotFound") => {}
        Err(e) => return Err(describe(&format!("looking up instance {id}"), e)),
    }
    match aws.block_on(
        aws.rds
            .describe_db_clusters()
            .db_cluster_identifier(id)
            .send(),
    ) {
        Ok(found) => Ok(found.db_clusters().first().map(|cluster| Found {
            arn: cluster.db_cluster_arn().unwrap_or_default().to_string(),
            tags: cluster.tag_list().to_vec(),
            endpoint: cluster.endpoint().and_then(|host| {
                Some(Endpoint {
                    host: host.to_string(),
                    port: u16::try_from(cluster.port()?).ok()?,
                })
            }),
        })),
        Err(e) if code(&e) == Some("DBClusterNotFoundFault") => Ok(None),
        Err(e) => Err(describe(&format!("looking up cluster {id}"), e)),
    }
}

/// Records `database`'s stamp as a tag on instance (or cluster) `id`.
pub(crate) fn record(aws: &Aws, id: &str, database: &str, recorded: &RecordedStamp) -> Result<()> {
    let Found { arn, .. } = arn_of(aws, id)?.ok_or_else(|| {
        Error::BadInput(format!(
            "no RDS instance or Aurora cluster {id} in {}: nothing to record the stamp on",
            aws.region
        ))
    })?;
    aws.block_on(
        aws.rds
            .add_tags_to_resource()
            .resource_name(&arn)
            .tags(
                aws_sdk_rds::types::Tag::builder()
                    .key(owner::stamp_tag_key(database))
                    .value(owner::stamp_tag_value(recorded))
                    .build(),
            )
            .send(),
    )
    .map_err(|e| describe(&format!("tagging {id} with the stamp of {database}"), e))?;
    Ok(())
}

/// The stamps recorded on instance (or cluster) `id`, by database; `None` when it does not
/// exist. Tags of our prefix that do not parse are ignored (a hand-edited tag records nothing).
pub(crate) fn recorded(aws: &Aws, id: &str) -> Result<Option<Recorded>> {
    Ok(recorded_with_endpoint(aws, id)?.map(|(_, stamps)| stamps))
}

/// Recorded stamps by database name.
pub(crate) type Recorded = Vec<(String, RecordedStamp)>;

/// [`recorded`], with the endpoint the instance answers on.
pub(crate) fn recorded_with_endpoint(
    aws: &Aws,
    id: &str,
) -> Result<Option<(Option<Endpoint>, Recorded)>> {
    let Some(found) = arn_of(aws, id)? else {
        return Ok(None);
    };
    Ok(Some((found.endpoint, stamp_tags(&found.tags))))
}

fn stamp_tags(tags: &[aws_sdk_rds::types::Tag]) -> Recorded {
    let prefix = owner::stamp_tag_key("");
    tags.iter()
        .filter_map(|tag| {
            let database = tag.key()?.strip_prefix(&prefix)?;
            let stamp = owner::parse_stamp_tag(tag.value()?)?;
            Some((database.to_string(), stamp))
        })
        .collect()
}

/// Removes every stamp record from instance (or cluster) `id`: a restored copy must not carry
/// its source's (RDS may copy a snapshot's tags onto the instance restored from it). Returns
/// how many there were.
pub(crate) fn forget(aws: &Aws, id: &str) -> Result<usize> {
    let Some(found) = arn_of(aws, id)? else {
        return Ok(0);
    };
    let prefix = owner::stamp_tag_key("");
    let keys: Vec<String> = found
        .tags
        .iter()
        .filter_map(|t| t.key())
        .filter(|k| k.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        return Ok(0);
    }
    aws.block_on(
        aws.rds
            .remove_tags_from_resource()
            .resource_name(&found.arn)
            .set_tag_keys(Some(keys.clone()))
            .send(),
    )
    .map_err(|e| describe(&format!("removing the copied stamp tags of {id}"), e))?;
    Ok(keys.len())
}
