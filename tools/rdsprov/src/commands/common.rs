//! What several commands share: reading the spec and choosing its envs, polling, the env's
//! protection, the local provider's setup, and the tables printed on a terminal.

use crate::aws::spec::{self, InstanceSpec, Spec};
use crate::local::{self, LocalProvider};
use dbtools::cli::GlobalArgs;
use dbtools::config::{self, Config};
use dbtools::contract::{self, Instance, Resources};
use dbtools::output::{self, Output};
use dbtools::{cli, input, Error, ExitStatus, Result};
use std::path::Path;
use std::time::Duration;

pub(super) const TOOL: &str = "rdsprov";

/// The spec from a file, or from stdin with `-`.
pub(super) fn read_spec(path: &Path) -> Result<Spec> {
    if path == Path::new("-") {
        let bytes = input::read_stdin()?;
        let text = contract::decode_text(&bytes)?;
        return spec::parse(&text, "on stdin");
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::BadInput(format!("cannot read spec {}: {e}", path.display())))?;
    spec::parse(&text, &path.display().to_string())
}

/// The spec's envs named by `--env` (each must be in the spec), all of them when none is.
pub(super) fn select<'a>(spec: &'a Spec, envs: &[String]) -> Result<Vec<&'a InstanceSpec>> {
    if envs.is_empty() {
        return Ok(spec.instances.iter().collect());
    }
    let mut chosen: Vec<&InstanceSpec> = Vec::new();
    for env in envs {
        let instance = instance_of(spec, env)?;
        if !chosen.iter().any(|c| c.env == instance.env) {
            chosen.push(instance);
        }
    }
    Ok(chosen)
}

pub(super) fn instance_of<'a>(spec: &'a Spec, env: &str) -> Result<&'a InstanceSpec> {
    spec.instances.iter().find(|i| i.env == env).ok_or_else(|| {
        let known: Vec<&str> = spec.instances.iter().map(|i| i.env.as_str()).collect();
        Error::BadInput(format!(
            "the spec has no env {env:?} (it has {})",
            known.join(", ")
        ))
    })
}

pub(super) fn env_of(spec: &&InstanceSpec) -> String {
    spec.env.clone()
}

/// Seconds between status polls while waiting (RDSPROV_POLL_SECONDS; 15 by default).
pub(super) fn poll_interval() -> Duration {
    std::env::var("RDSPROV_POLL_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(Duration::from_secs(15))
}

/// The project's config, when there is one, and the env's protection: the config's, or the
/// default for its name (an AWS spec can be used without a dbtools.toml).
pub(super) fn env_protection(
    global: &GlobalArgs,
    env: &str,
) -> (Option<Config>, contract::Protection) {
    let config = Config::find(global.config.as_deref()).ok().flatten();
    let protection = config
        .as_ref()
        .filter(|c| c.envs.contains_key(env))
        .map(|c| c.protection(env))
        .unwrap_or_else(|| config::default_protection(env));
    (config, protection)
}

pub(super) fn region_or_environment(region: Option<&str>, verb: &str) -> Result<String> {
    region
        .map(str::to_string)
        .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
        .ok_or_else(|| {
            Error::BadInput(format!(
                "{verb}: no region: pass --region or set AWS_REGION"
            ))
        })
}

/// AWS resources: JSON when piped, a table on a terminal.
pub(super) fn emit_aws(
    out: Output,
    changes: Vec<String>,
    instances: Vec<Instance>,
) -> Result<ExitStatus> {
    let resources = Resources {
        provider: contract::Provider::Aws,
        changes,
        instances,
    };
    out.emit(&resources, || render_aws(&resources.instances))?;
    Ok(ExitStatus::Success)
}

pub(super) fn render_aws(instances: &[Instance]) -> String {
    let rows: Vec<Vec<String>> = instances
        .iter()
        .map(|i| {
            vec![
                i.env.clone().unwrap_or_default(),
                i.id.clone(),
                i.status.clone(),
                format!("{}:{}", i.endpoint.host, i.endpoint.port),
                i.class.clone().unwrap_or_default(),
                format!("{} {}", i.engine, i.engine_version),
                i.security_group.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(
        &[
            "ENV",
            "INSTANCE",
            "STATUS",
            "ENDPOINT",
            "CLASS",
            "ENGINE",
            "SECURITY GROUP",
        ],
        &rows,
    )
}

/// The changes, each said on stderr; "nothing to change" when there are none.
pub(super) fn report(changes: &[String]) {
    for change in changes {
        cli::note(TOOL, change);
    }
    if changes.is_empty() {
        cli::note(TOOL, "nothing to change");
    }
}

/// dbtools.toml, for the local provider's commands (a refusal on Windows, saying what to use
/// there).
pub(super) fn local_config(global: &GlobalArgs) -> Result<Config> {
    if cfg!(windows) {
        return Err(Error::BadInput(
            dbtools::server::WINDOWS_REFUSAL.to_string(),
        ));
    }
    Config::load(global.config.as_deref())
}

/// Local resources: JSON when piped, a table on a terminal (the changes were said on stderr
/// as they were made).
pub(super) fn emit_local(
    out: Output,
    changes: Vec<String>,
    instances: Vec<Instance>,
) -> Result<ExitStatus> {
    let resources = Resources {
        provider: contract::Provider::Local,
        changes,
        instances,
    };
    out.emit(&resources, || render_local(&resources))?;
    Ok(ExitStatus::Success)
}

pub(super) fn local_statuses(
    config: &Config,
    provider: &LocalProvider,
    selection: &crate::cli::Selection,
) -> Result<Vec<Instance>> {
    let mut instances = Vec::new();
    for spec in local::instance_specs(config, &selection.envs)? {
        if let Some(instance) = provider.status(&spec.id)? {
            instances.push(instance);
        } else {
            cli::note(
                TOOL,
                format!(
                    "instance {} is not provisioned: run `rdsprov apply`",
                    spec.id
                ),
            );
        }
    }
    Ok(instances)
}

/// The instances as a table; the changes were said on stderr as they were made.
pub(super) fn render_local(resources: &Resources) -> String {
    let mut text = String::new();
    let rows: Vec<Vec<String>> = resources
        .instances
        .iter()
        .map(|i| {
            vec![
                i.id.clone(),
                i.provider.to_string(),
                i.status.clone(),
                format!("{}:{}", i.endpoint.host, i.endpoint.port),
                format!("{} {}", i.engine, i.engine_version),
                i.databases
                    .iter()
                    .map(|d| format!("{} ({})", d.name, d.env))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    if !rows.is_empty() {
        text.push_str(&output::table(
            &[
                "INSTANCE",
                "PROVIDER",
                "STATUS",
                "ENDPOINT",
                "ENGINE",
                "DATABASES",
            ],
            &rows,
        ));
    }
    text
}

/// The database of `env` on a local instance, for messages.
pub(super) fn database_name<'a>(spec: &'a local::InstanceSpec, env: &str) -> &'a str {
    spec.databases
        .iter()
        .find(|d| d.env == env)
        .map_or("-", |d| d.name.as_str())
}

/// `act` on the local instance of each selected env, under the provider's lock, each change
/// said as it is made; then their status.
pub(super) fn each_local_instance(
    out: Output,
    global: &GlobalArgs,
    selection: &crate::cli::Selection,
    act: fn(&LocalProvider, &str) -> Result<Option<String>>,
) -> Result<ExitStatus> {
    let config = local_config(global)?;
    let provider = LocalProvider {
        state: &config.state,
    };
    let mut changes = Vec::new();
    let _lock = provider.lock()?;
    for spec in local::instance_specs(&config, &selection.envs)? {
        let done = act(&provider, &spec.id)?;
        done.iter().for_each(|change| cli::note(TOOL, change));
        changes.extend(done);
    }
    let instances = local_statuses(&config, &provider, selection)?;
    emit_local(out, changes, instances)
}
