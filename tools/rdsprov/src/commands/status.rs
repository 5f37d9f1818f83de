//! `rdsprov status`: each instance — endpoint, status, databases. With `--spec`, the AWS
//! spec's envs (read at once); otherwise the local instances of dbtools.toml.

use super::common::{
    emit_aws, emit_local, env_of, local_config, local_statuses, read_spec, select, TOOL,
};
use crate::aws::progress::{all_envs, each_env};
use crate::aws::{observe, Aws};
use crate::cli::Selection;
use crate::local::LocalProvider;
use dbtools::cli::GlobalArgs;
use dbtools::output::Output;
use dbtools::{cli, ExitStatus, Result};
use std::path::Path;

pub(super) fn aws(out: Output, path: &Path, envs: &[String]) -> Result<ExitStatus> {
    let spec = read_spec(path)?;
    let chosen = select(&spec, envs)?;
    let aws = Aws::connect(&spec.region)?;
    let found = all_envs(each_env(&chosen, env_of, |instance| {
        observe::instance(&aws, instance)
    }))?;
    let mut instances = Vec::new();
    for (instance, found) in chosen.iter().zip(found) {
        match found {
            Some(found) => instances.push(found),
            None => cli::note(
                TOOL,
                format!(
                    "env {}: instance {} does not exist: run `rdsprov apply --spec …`",
                    instance.env, instance.id
                ),
            ),
        }
    }
    emit_aws(out, Vec::new(), instances)
}

pub(super) fn local(out: Output, global: &GlobalArgs, selection: &Selection) -> Result<ExitStatus> {
    let config = local_config(global)?;
    let provider = LocalProvider {
        state: &config.state,
    };
    let instances = local_statuses(&config, &provider, selection)?;
    emit_local(out, Vec::new(), instances)
}
