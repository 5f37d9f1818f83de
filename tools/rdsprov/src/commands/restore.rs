//! `rdsprov restore`: through the guard (action `restore`, the env's protection), then into a
//! NEW instance (or Aurora cluster) with the live one's security group; with `--for ENV` its
//! databases are adopted by that env.

use super::common::{emit_aws, env_protection, instance_of, poll_interval, read_spec, TOOL};
use crate::aws::progress::{Interrupt, Progress};
use crate::aws::target::RestoreSource;
use crate::aws::{databases, observe, restore, Aws};
use crate::cli::RestoreArgs;
use dbtools::cli::GlobalArgs;

use dbtools::output::Output;
use dbtools::{cli, Error, ExitStatus, Result};
use std::path::Path;

/// Where a restore goes beyond the new instance itself: the env that adopts its databases
/// (`--for ENV`), reached with the RDS CA bundle.
struct Adoption<'a> {
    env: &'a str,
    sslrootcert: Option<&'a Path>,
}

pub(super) fn aws(out: Output, global: &GlobalArgs, args: RestoreArgs) -> Result<ExitStatus> {
    let source = match (args.from_snapshot, args.to_time, args.latest) {
        (Some(snapshot), None, false) => RestoreSource::Snapshot(snapshot),
        (None, Some(time), false) => RestoreSource::Time(time),
        (None, None, true) => RestoreSource::Latest,
        _ => {
            return Err(Error::BadInput(
                "restore: say where from: --from-snapshot ID, --to-time TIME or --latest".into(),
            ))
        }
    };
    let source = &source;
    let (env, target_id, confirm) = (args.env.as_str(), args.target.as_str(), &args.confirm);
    let adoption = args.for_env.as_deref().map(|env| Adoption {
        env,
        sslrootcert: args.sslrootcert.as_deref(),
    });
    let path = args.spec.as_path();
    let spec = read_spec(path)?;
    let instance = instance_of(&spec, env)?;
    let (config, protection) = env_protection(global, env);
    let guard = dbtools::guard::Guard::for_instance(
        TOOL,
        "restore",
        env,
        protection,
        &instance.id,
        config.as_ref(),
    )?;
    let confirmation = confirm.confirmation();
    guard.check_protection(&confirmation)?;
    if let Some(adoption) = &adoption {
        dbtools::names::check_env_name(adoption.env)?;
        // The CA bundle is checked before AWS is asked for anything.
        if adoption.sslrootcert.is_none_or(|p| !p.is_file()) {
            return Err(Error::BadInput(format!(
                "restore --for {} adopts the restored databases over verify-full TLS: pass --sslrootcert with the RDS CA bundle (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)",
                adoption.env
            )));
        }
    }
    guard.record_allowed(None, &confirmation)?;
    let aws = Aws::connect(&spec.region)?;
    let live = observe::observe(&aws, instance)?;
    let interrupt = Interrupt::catch();
    let mut progress = Progress::new(env, poll_interval(), interrupt.sigint());
    restore::restore(&aws, instance, &live, source, target_id, &mut progress)?;
    let mut changes = progress.into_done();
    // Adopting the copies is SQL on the new instance: Ctrl-C there is plain Ctrl-C again.
    drop(interrupt);
    if let Some(adoption) = &adoption {
        let mut restored = instance.clone();
        restored.id = target_id.to_string();
        let level = env_protection(global, adoption.env).1;
        let adopted = databases::MasterAccess::of(
            &aws,
            &restored,
            instance,
            adoption.sslrootcert,
            "restore --for",
        )
        .and_then(|access| {
            databases::adopt_restored(&aws, target_id, &access, adoption.env, level, &instance.id)
        })
        .map_err(|e| {
            let message = format!(
                "{target_id} is restored, but adopting its databases for env {} failed: {}; once it is reachable, point env {} at it and run `dbguard adopt {}`",
                adoption.env,
                e.message(),
                adoption.env,
                adoption.env
            );
            match e {
                Error::Unreachable(_) => Error::Unreachable(message),
                _ => Error::Failed(message),
            }
        })?;
        for change in &adopted {
            cli::note(TOOL, change);
        }
        changes.extend(adopted);
    }
    let mut target = instance.clone();
    target.id = target_id.to_string();
    let restored = observe::instance(&aws, &target)?
        .ok_or_else(|| Error::Failed(format!("instance {target_id} vanished after the restore")))?;
    emit_aws(out, changes, vec![restored])
}
