//! `rdsprov tenant add NAME --env ENV`: one more application gets its own database and
//! owning role on the env's instance (CONNECT revoked from PUBLIC), its password kept as a
//! secret, the database stamped with the env. With `--spec`, on the env's AWS instance
//! (reached with the RDS CA bundle); otherwise on its local one.

use super::common::{emit_aws, emit_local, instance_of, local_config, read_spec, report, TOOL};
use crate::aws::{observe, tenants, Aws};
use crate::local::{self, LocalProvider};
use dbtools::cli::GlobalArgs;
use dbtools::config::Config;
use dbtools::output::Output;
use dbtools::{cli, Error, ExitStatus, Result};
use std::path::Path;

/// The project's config, when there is one, names the env app roles a tenant must not take.
pub(super) fn aws(
    out: Output,
    global: &GlobalArgs,
    path: &Path,
    env: &str,
    name: &str,
    iam: bool,
    sslrootcert: Option<&Path>,
) -> Result<ExitStatus> {
    let spec = read_spec(path)?;
    let instance = instance_of(&spec, env)?;
    let config = Config::find(global.config.as_deref())?;
    let tenant = crate::tenancy::checked_tenant(env, name, &instance.master_user, config.as_ref())?;
    let aws = Aws::connect(&spec.region)?;
    let (changes, record) = tenants::add(&aws, instance, &tenant, iam, sslrootcert)?;
    report(&changes);
    let mut found = observe::instance(&aws, instance)?
        .ok_or_else(|| Error::Failed(format!("instance {} vanished", instance.id)))?;
    found.databases.push(record);
    emit_aws(out, changes, vec![found])
}

pub(super) fn local(
    out: Output,
    global: &GlobalArgs,
    env: String,
    name: &str,
) -> Result<ExitStatus> {
    let config = local_config(global)?;
    let provider = LocalProvider {
        state: &config.state,
    };
    let mut changes = Vec::new();
    let mut instances = Vec::new();
    let specs = local::instance_specs(&config, std::slice::from_ref(&env))?;
    let tenant = crate::tenancy::checked_tenant(&env, name, &specs[0].master_user, Some(&config))?;
    let _lock = provider.lock()?;
    let (instance, done) = provider.add_tenant(&specs[0], &tenant)?;
    for change in &done {
        cli::note(TOOL, change);
    }
    if done.is_empty() {
        cli::note(TOOL, "nothing to change");
    }
    changes.extend(done);
    instances.push(instance);
    emit_local(out, changes, instances)
}
