//! `rdsprov start`: start stopped local instances.

use super::common::{emit_local, local_config, local_statuses, TOOL};
use crate::cli::Selection;
use crate::local::{self, LocalProvider};
use dbtools::cli::GlobalArgs;
use dbtools::output::Output;
use dbtools::{cli, ExitStatus, Result};

pub(super) fn local(out: Output, global: &GlobalArgs, selection: &Selection) -> Result<ExitStatus> {
    let config = local_config(global)?;
    let provider = LocalProvider {
        state: &config.state,
    };
    let mut changes = Vec::new();
    let _lock = provider.lock()?;
    for spec in local::instance_specs(&config, &selection.envs)? {
        let done = provider.start(&spec.id)?;
        done.iter().for_each(|change| cli::note(TOOL, change));
        changes.extend(done);
    }
    let instances = local_statuses(&config, &provider, selection)?;
    emit_local(out, changes, instances)
}
