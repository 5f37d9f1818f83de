//! `rdsprov reset --env E`: drop the env's local database and create it again, empty and
//! stamped — through the guard, with the database's own stamp deciding what it is.

use super::common::{database_name, emit_local, local_config, local_statuses, TOOL};
use crate::cli::Selection;
use crate::local::{self, LocalProvider};
use dbtools::cli::{ConfirmArgs, GlobalArgs};
use dbtools::contract::Protection;
use dbtools::guard::Guard;
use dbtools::output::Output;
use dbtools::{cli, ExitStatus, Result};

pub(super) fn local(
    out: Output,
    global: &GlobalArgs,
    env: String,
    confirm: &ConfirmArgs,
) -> Result<ExitStatus> {
    let config = local_config(global)?;
    let provider = LocalProvider {
        state: &config.state,
    };
    let mut changes = Vec::new();
    // The protection level first: a locked env is refused before anything about its
    // instance is even looked up.
    let instance = config.env_instance(&env)?.map(|(id, _)| id.to_string());
    let guard = Guard::for_instance(
        TOOL,
        "reset",
        &env,
        config.protection(&env),
        instance.as_deref().unwrap_or("-"),
        Some(&config),
    )?;
    let confirmation = confirm.confirmation();
    guard.check_protection(&confirmation)?;
    let specs = local::instance_specs(&config, std::slice::from_ref(&env))?;
    let spec = &specs[0];
    let profile = dbtools::resolve::resolve_profile(&config, &env)?;
    let mut guard = Guard::new(TOOL, "reset", &profile, Some(&config))?;
    let _lock = provider.lock()?;
    // The database decides: never drop one that says it belongs to another env, and
    // its own stamp's level is what the confirmation must meet. When it cannot be read,
    // the instance record says what is there.
    let stamped = match provider.read_stamp(spec, &env) {
        Ok(stamp) => stamp.map(|s| (s.env, Some(s.protection))),
        Err(_) => provider.stakes(&spec.id)?.and_then(|stakes| {
            stakes
                .stamps
                .into_iter()
                .find(|s| {
                    spec.databases
                        .iter()
                        .any(|d| d.env == env && d.name == s.database)
                })
                .map(|s| (s.env, s.protection))
        }),
    };
    if let Some((stamped_env, level)) = stamped {
        if stamped_env != env {
            let reason = format!(
                    "reset of env {env} refused: its database {} on instance {} is stamped {stamped_env}; fix database and instance of env {env} in dbtools.toml",
                    database_name(spec, &env),
                    spec.id
                );
            return Err(guard.refuse(None, reason));
        }
        guard.protection = guard.protection.max(level.unwrap_or(Protection::Locked));
        if let Some(reason) = dbtools::guard::protection_refusal(
            &env,
            &env,
            guard.protection,
            "reset",
            guard.class,
            &confirmation,
        ) {
            return Err(guard.refuse(
                None,
                format!(
                    "{reason} (the database's stamp says {})",
                    guard.protection.as_str()
                ),
            ));
        }
    }
    guard.record_allowed(None, &confirmation)?;
    let done = provider.reset_database(spec, &env)?;
    for change in &done {
        cli::note(TOOL, change);
    }
    changes.extend(done);
    let instances = local_statuses(&config, &provider, &Selection { envs: vec![env] })?;
    emit_local(out, changes, instances)
}
