//! `rdsprov snapshot`: a manual snapshot of an env's RDS instance (a cluster snapshot on
//! Aurora), named three ways — `--spec F --env E`; `--env E` alone, for an env whose
//! dbtools.toml entry names its AWS instance (as `dbenv import` writes it); or
//! `--before-migrate`, in the migrate pipeline:
//!
//! ```sh
//! dbenv resolve test | dbmigrate status | rdsprov snapshot --before-migrate | dbmigrate up
//! ```
//!
//! There it reads `dbmigrate status`, and takes the snapshot only when migrations are pending
//! and the env's `snapshot_before_migrate` is on (by default: AWS envs other than dev); either
//! way it passes the profile on, with the snapshot id in it, so `dbmigrate up` records the id
//! in its result and the audit log. The AWS SDK stays in rdsprov.

use super::access::{locate, Located};
use super::common::{instance_of, poll_interval, read_spec};
use crate::aws::ingress;
use crate::aws::progress::{Interrupt, Progress};
use crate::aws::{target, Aws};
use crate::cli::AccessTarget;
use dbtools::cli::GlobalArgs;
use dbtools::config::Config;
use dbtools::contract::{self, MigrateStatus, Profile};

use dbtools::output::{self, Output};
use dbtools::{cli, input, resolve, Error, ExitStatus, Result};
use std::path::Path;

const TOOL: &str = "rdsprov";

pub(super) fn run(
    out: Output,
    global: &GlobalArgs,
    spec: Option<&Path>,
    env: Option<&str>,
    name: Option<&str>,
    before_migrate: bool,
) -> Result<ExitStatus> {
    if before_migrate {
        return before_migrate_step(out, global, name);
    }
    let env = env.ok_or_else(|| {
        Error::BadInput(
            "snapshot: name the env (--env E), or pipe `dbmigrate status` in with --before-migrate"
                .into(),
        )
    })?;
    if let Some(path) = spec {
        let spec = read_spec(path)?;
        let instance = instance_of(&spec, env)?;
        let aws = Aws::connect(&spec.region)?;
        let taken = take(&aws, env, target::of(instance), &instance.id, name)?;
        return emit(out, &taken);
    }
    let config = Config::find(global.config.as_deref())?;
    let (id, region) = match locate(config.as_ref(), Some(env), &AccessTarget::default())? {
        Located::Aws { id, region } => (id, region),
        Located::Local { id } => {
            return Err(Error::BadInput(format!(
                "env {env}: instance {id} is on the local provider, which takes no snapshots (back it up with `dbmigrate dump` or pg_dump)"
            )))
        }
    };
    let aws = Aws::connect(&region)?;
    let found = ingress::find(&aws, &id)?;
    let taken = take(&aws, env, found.kind, &id, name)?;
    emit(out, &taken)
}

fn take(
    aws: &Aws,
    env: &str,
    kind: &dyn target::Target,
    id: &str,
    name: Option<&str>,
) -> Result<contract::Snapshot> {
    let interrupt = Interrupt::catch();
    let progress = Progress::new(env, poll_interval(), interrupt.sigint());
    let taken = crate::aws::snapshot::snapshot(aws, kind, id, name, &progress)?;
    cli::note(
        TOOL,
        format!(
            "snapshot {} of {} is {}",
            taken.snapshot, taken.instance, taken.status
        ),
    );
    Ok(taken)
}

/// The env's setting, else the default: AWS envs other than dev.
fn wanted(config: Option<&Config>, profile: &Profile) -> bool {
    let on_aws = profile
        .instance
        .as_ref()
        .is_some_and(|i| i.provider == dbtools::contract::Provider::Aws);
    config
        .and_then(|c| c.envs.get(&profile.env))
        .and_then(|e| e.snapshot_before_migrate)
        .unwrap_or(on_aws && profile.env != "dev")
}

fn before_migrate_step(out: Output, global: &GlobalArgs, name: Option<&str>) -> Result<ExitStatus> {
    let message = contract::parse_message(&contract::decode_text(&input::read_stdin()?)?)?;
    if message.kind == contract::ErrorMessage::KIND {
        return Err(contract::upstream_error(&message.value));
    }
    if message.kind != contract::MigrateStatus::KIND {
        return Err(Error::BadInput(format!(
            "--before-migrate reads what `dbmigrate status` prints, not {}: dbenv resolve ENV | dbmigrate status | rdsprov snapshot --before-migrate | dbmigrate up",
            message.kind
        )));
    }
    let status: MigrateStatus = serde_json::from_value(message.value)
        .map_err(|e| Error::BadInput(format!("the piped migrate status does not parse: {e}")))?;
    let config = Config::find(global.config.as_deref())?;
    let mut profile = resolve::admit_piped_profile(status.profile, config.as_ref())?;
    let env = profile.env.clone();
    if !wanted(config.as_ref(), &profile) {
        cli::note(
            TOOL,
            format!("env {env}: snapshot_before_migrate is off: no snapshot"),
        );
    } else if status.pending == 0 {
        cli::note(
            TOOL,
            format!("env {env}: no pending migrations: no snapshot"),
        );
    } else if status.changed + status.missing > 0 {
        cli::note(
            TOOL,
            format!(
                "env {env}: applied migrations were edited or are missing here, which `dbmigrate up` refuses: no snapshot"
            ),
        );
    } else {
        let instance = profile
            .instance
            .clone()
            .filter(|i| i.provider == dbtools::contract::Provider::Aws)
            .ok_or_else(|| {
                Error::BadInput(format!(
                    "env {env}: snapshot_before_migrate is on, but its instance is not on AWS: only RDS takes snapshots (turn it off for this env)"
                ))
            })?;
        let region = instance
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
            .ok_or_else(|| {
                Error::BadInput(format!(
                    "env {env}: instance {} names no region: set region in its [instance] table or AWS_REGION",
                    instance.id
                ))
            })?;
        let aws = Aws::connect(&region)?;
        cli::note(
            TOOL,
            format!(
                "env {env}: {} pending migration(s): taking a snapshot of {} first",
                status.pending, instance.id
            ),
        );
        let found = ingress::find(&aws, &instance.id)?;
        let taken = take(&aws, &env, found.kind, &instance.id, name)?;
        profile.snapshot = Some(taken.snapshot);
    }
    let shown = profile.clone();
    out.emit(&shown, || {
        output::key_values(&[
            ("env", shown.env.clone()),
            (
                "snapshot",
                shown.snapshot.clone().unwrap_or_else(|| "-".into()),
            ),
        ])
    })?;
    Ok(ExitStatus::Success)
}

/// A snapshot's JSON, or its fields on a terminal.
fn emit(out: Output, taken: &contract::Snapshot) -> Result<ExitStatus> {
    out.emit(taken, || {
        output::key_values(&[
            ("env", taken.env.clone()),
            ("instance", taken.instance.clone()),
            ("snapshot", taken.snapshot.clone()),
            ("status", taken.status.clone()),
        ])
    })?;
    Ok(ExitStatus::Success)
}
