//! Destroy an env's target on AWS — destructive, through the shared guard: `--confirm
//! <instance-id>` on every env, `--break-glass` on locked ones; refused while deletion
//! protection is on unless `--disable-deletion-protection` is given too; a final snapshot
//! unless skipped, which only an open env may do. The guard has its say for every env before
//! any of them is touched (`allow`), then each is deleted (`destroy`).

use crate::aws::attributes::Name;
use crate::aws::progress::Progress;
use crate::aws::rules;
use crate::aws::spec::InstanceSpec;
use crate::aws::target::{self, Modify, On};
use crate::aws::{apply, observe, plan, Aws};
use dbtools::contract::{ChangeWhen, PlanResource, Protection};
use dbtools::guard::{Confirmation, Guard};
use dbtools::Result;

const TOOL: &str = "rdsprov";

pub(crate) struct DestroyOptions {
    pub confirmation: Confirmation,
    pub protection: Protection,
    pub disable_deletion_protection: bool,
    pub skip_final_snapshot: bool,
    /// The RDS CA bundle: read the stamps in the instance's databases too (as its master),
    /// beside those its tags record.
    pub sslrootcert: Option<std::path::PathBuf>,
}

/// A destroy the guard allowed: what to delete, and how.
pub(crate) struct Allowed {
    members: Vec<String>,
    protected: bool,
    final_snapshot: Option<String>,
}

/// The guard's say on deleting the env's target, before anything is changed: every env whose
/// data is on it must be confirmed, deletion protection must be lifted on purpose, and only
/// open envs may skip the final snapshot. A refusal is audited here; the guard that allowed is
/// returned, to record the destroy once every env named is allowed.
pub(crate) fn allow(
    aws: &Aws,
    spec: &InstanceSpec,
    options: &DestroyOptions,
    config: Option<&dbtools::config::Config>,
) -> Result<(Allowed, Guard<'static>)> {
    // An AWS instance is gone for good: its id is typed on every env, open ones included.
    let guard = Guard::for_instance(
        TOOL,
        "destroy",
        &spec.env,
        options.protection.max(Protection::Confirm),
        &spec.id,
        config,
    )?
    .confirmed_by(&spec.id);
    guard.check_protection(&options.confirmation)?;
    if options.skip_final_snapshot && options.protection != Protection::Open {
        return Err(guard.refuse(
            None,
            format!(
                "destroy of {} without a final snapshot refused: env {} is {}; only open envs may skip it",
                spec.id,
                spec.env,
                options.protection.as_str()
            ),
        ));
    }
    let observed = observe::observe(aws, spec)?;
    let Some(state) = &observed.target else {
        return Err(observe::missing(spec, "destroy"));
    };
    // Every env whose data is on the instance is at risk, whatever env the spec calls it: the
    // stamps recorded on it decide (its databases are not read from here), and with no record
    // at all it counts as locked. Each protected env is confirmed beside the instance id.
    let recorded = crate::aws::stamps::recorded(aws, &spec.id)?.unwrap_or_default();
    let mut at_risk: Vec<(String, Protection)> = recorded
        .into_iter()
        .map(|(_, stamp)| {
            let level = dbtools::guard::floor(&stamp.env, stamp.protection, config);
            (stamp.env, level)
        })
        .collect();
    if options.sslrootcert.is_some() {
        // With a route and the CA bundle, the databases speak for themselves too; when they
        // cannot be reached, the recorded stamps decide alone.
        let live = crate::aws::databases::MasterAccess::of(
            aws,
            spec,
            spec,
            options.sslrootcert.as_deref(),
            "destroy --sslrootcert",
        )
        .and_then(|access| access.stamped());
        match live {
            Ok(stamped) => at_risk.extend(stamped.into_iter().map(|(_, stamp, _)| {
                let level = dbtools::guard::floor(&stamp.env, stamp.protection, config);
                (stamp.env, level)
            })),
            Err(e) => dbtools::cli::note(
                TOOL,
                format!(
                    "env {}: the databases of {} cannot be read from here ({}): the stamps recorded on the instance decide",
                    spec.env,
                    spec.id,
                    e.message()
                ),
            ),
        }
    }
    if at_risk.is_empty() {
        at_risk.push((spec.env.clone(), Protection::Locked));
    } else {
        at_risk.push((spec.env.clone(), options.protection));
    }
    if let Some(reason) =
        dbtools::guard::instance_refusal("destroy", &spec.id, &at_risk, &options.confirmation)
    {
        let unrecorded = if at_risk.len() == 1 {
            " (no database stamp is recorded on it — `dbguard stamp` records one as a tag — so it counts as locked)"
        } else {
            ""
        };
        return Err(guard.refuse(
            None,
            format!(
                "{reason}{unrecorded}; the instance id {} is typed in the same list",
                spec.id
            ),
        ));
    }
    let protected = state.get(Name::DeletionProtection) == "true";
    if protected && !options.disable_deletion_protection {
        return Err(guard.refuse(
            None,
            format!(
                "{} {} has deletion protection on: add --disable-deletion-protection to turn it off and delete",
                target::of(spec).kind(),
                spec.id
            ),
        ));
    }
    let allowed = Allowed {
        members: observed.members.iter().map(|m| m.id.clone()).collect(),
        protected,
        final_snapshot: (!options.skip_final_snapshot).then(|| {
            let suffix = format!("final-{}", dbtools::time::compact_now());
            let cluster = target::of(spec).resource() == PlanResource::DbCluster;
            rules::snapshot_name(&spec.id, &suffix, cluster)
        }),
    };
    Ok((allowed, guard))
}

/// Deletes what the guard allowed: deletion protection off when asked, an Aurora cluster's
/// members (waited for) before the cluster, with the final snapshot unless skipped.
pub(crate) fn destroy(
    aws: &Aws,
    spec: &InstanceSpec,
    allowed: &Allowed,
    progress: &mut Progress,
) -> Result<()> {
    let target = target::of(spec);
    if allowed.protected {
        aws.block_on(target.modify(
            On { aws, spec },
            Modify {
                id: &spec.id,
                changes: &[plan::attribute(
                    Name::DeletionProtection.as_str(),
                    Some("true".into()),
                    "false".into(),
                    ChangeWhen::Immediately,
                )],
                group_id: None,
                password: None,
                immediately: true,
            },
        ))
        .map_err(|e| e.context("turning deletion protection off"))?;
        progress.did(format!("turned deletion protection off on {}", spec.id));
    }
    for member in &allowed.members {
        progress.check_interrupt()?;
        aws.block_on(target.delete_member(aws, member))?;
        progress.did(format!("deleted instance {member}"));
    }
    if !allowed.members.is_empty() {
        apply::wait_deleted(aws, &allowed.members, progress)?;
    }
    progress.check_interrupt()?;
    aws.block_on(target.delete(aws, &spec.id, allowed.final_snapshot.as_deref()))?;
    progress.did(match &allowed.final_snapshot {
        None => format!("deleted {} {} (no final snapshot)", target.kind(), spec.id),
        Some(snapshot) => format!(
            "deleted {} {} (final snapshot {snapshot})",
            target.kind(),
            spec.id
        ),
    });
    Ok(())
}
