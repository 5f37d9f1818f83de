//! `rdsprov apply`: converge instances. With `--spec`, every env of the AWS spec (or those
//! named with `--env`) at once — each says what it does as it goes, one env's failure leaves
//! the others to finish — and with `--sslrootcert` each instance's stamped databases are
//! upgraded in place; otherwise the local instances of dbtools.toml.

use super::common::{
    emit_aws, emit_local, env_of, local_config, poll_interval, read_spec, select, TOOL,
};
use crate::aws::progress::{all_envs, each_env, Interrupt, Progress};
use crate::aws::{apply, databases, observe, plan, Aws};
use crate::cli::Selection;
use crate::local::{self, LocalProvider};
use dbtools::cli::GlobalArgs;

use dbtools::output::Output;
use dbtools::{cli, ExitStatus, Result};
use std::path::Path;

static UPGRADES: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(super) fn aws(
    out: Output,
    path: &Path,
    envs: &[String],
    sslrootcert: Option<&Path>,
) -> Result<ExitStatus> {
    let spec = read_spec(path)?;
    let chosen = select(&spec, envs)?;
    let aws = Aws::connect(&spec.region)?;
    let interrupt = Interrupt::catch();
    let applied = all_envs(each_env(&chosen, env_of, |instance| {
        let mut progress = Progress::new(&instance.env, poll_interval(), interrupt.sigint());
        let observed = observe::observe(&aws, instance)?;
        let planned = plan::plan(instance, &observed);
        let found = apply::apply(&aws, instance, &observed, &planned, &mut progress)?;
        if sslrootcert.is_some() {
            // One env at a time: a verify-full connect sets the process's environment for
            // OpenSSL, which threads must not do at once.
            let _one_at_a_time = UPGRADES.lock().unwrap_or_else(|e| e.into_inner());
            let upgraded = databases::MasterAccess::of(
                &aws,
                instance,
                instance,
                sslrootcert,
                "apply --sslrootcert",
            )
            .and_then(|access| databases::upgrade(&aws, instance, &access))
            .map_err(|e| progress.failure(e, "apply --sslrootcert"))?;
            for change in upgraded {
                progress.did(change);
            }
        }
        Ok((progress.into_done(), found))
    }))?;
    let (changes, instances): (Vec<Vec<String>>, Vec<_>) = applied.into_iter().unzip();
    let changes: Vec<String> = changes.into_iter().flatten().collect();
    if changes.is_empty() {
        cli::note(TOOL, "nothing to change");
    }
    emit_aws(out, changes, instances)
}

pub(super) fn local(out: Output, global: &GlobalArgs, selection: &Selection) -> Result<ExitStatus> {
    let config = local_config(global)?;
    let provider = LocalProvider {
        state: &config.state,
    };
    let mut changes = Vec::new();
    let mut instances = Vec::new();
    let specs = local::instance_specs(&config, &selection.envs)?;
    let _lock = provider.lock()?;
    for spec in &specs {
        let (instance, changed) = provider.apply(spec)?;
        for change in &changed {
            cli::note(TOOL, change);
        }
        changes.extend(changed);
        instances.push(instance);
    }
    if changes.is_empty() {
        cli::note(TOOL, "nothing to change");
    }
    emit_local(out, changes, instances)
}
