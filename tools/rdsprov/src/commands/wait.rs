//! `rdsprov wait --spec F [--env E …]`: until each env's instance (or Aurora cluster with its
//! members) is `available`, all envs at once; Ctrl-C stops every wait with exit 130 and
//! changes nothing.

use super::common::{emit_aws, env_of, poll_interval, read_spec, select};
use crate::aws::progress::{all_envs, each_env, Interrupt, Progress};
use crate::aws::{apply, observe, Aws};

use dbtools::output::Output;
use dbtools::{Error, ExitStatus, Result};
use std::path::Path;

pub(super) fn aws(out: Output, path: &Path, envs: &[String]) -> Result<ExitStatus> {
    let spec = read_spec(path)?;
    let chosen = select(&spec, envs)?;
    let aws = Aws::connect(&spec.region)?;
    let interrupt = Interrupt::catch();
    let instances = all_envs(each_env(&chosen, env_of, |instance| {
        let progress = Progress::new(&instance.env, poll_interval(), interrupt.sigint());
        apply::wait_available(&aws, instance, &progress, apply::Settle::Once)?;
        observe::instance(&aws, instance)?.ok_or_else(|| {
            Error::Failed(format!("instance {} vanished after the wait", instance.id))
        })
    }))?;
    emit_aws(out, Vec::new(), instances)
}
