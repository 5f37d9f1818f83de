//! `rdsprov access show|allow-current|revoke`: which instance (the env's in the spec, one
//! named with --instance, or the env's in dbtools.toml as `dbenv import` wrote it), which
//! machine (its name), the guard on locked envs, and the answer as `dbtools.access/v1`. The
//! AWS calls are in `aws::ingress`; a local instance listens on loopback and needs no rule.

use super::common::report;
use crate::aws::ingress;
use crate::aws::Aws;
use crate::checkip;
use crate::cli::{AccessCommand, AccessTarget};
use dbtools::cli::{ConfirmArgs, GlobalArgs};
use dbtools::config::Config;
use dbtools::contract::{Access, Protection, Provider};
use dbtools::guard::Guard;
use dbtools::output::{self, Output};
use dbtools::{envvars, identity, Error, ExitStatus, Result};

const TOOL: &str = "rdsprov";

/// Where the instance is.
pub(super) enum Located {
    Local { id: String },
    Aws { id: String, region: String },
}

pub(super) fn run(out: Output, global: &GlobalArgs, command: AccessCommand) -> Result<ExitStatus> {
    let config = Config::find(global.config.as_deref())?;
    let machine = machine_name(config.as_ref())?;
    match command {
        AccessCommand::Show {
            env,
            target,
            offline,
        } => {
            let located = locate(config.as_ref(), env.as_deref(), &target)?;
            let access = match located {
                Located::Local { id } => local_answer(env.as_deref(), &id, &machine),
                Located::Aws { id, region } => {
                    let address = if offline {
                        None
                    } else {
                        Some(checkip::public_address(&checkip::endpoint(
                            config.as_ref(),
                        ))?)
                    };
                    let aws = Aws::connect(&region)?;
                    let target = ingress::find(&aws, &id)?;
                    ingress::show(&aws, &target, env.as_deref(), &machine, address)?
                }
            };
            emit(out, access)
        }
        AccessCommand::AllowCurrent {
            env,
            target,
            replace,
            confirm,
        } => {
            let (id, region) = match guarded(global, config.as_ref(), &env, &target, &confirm)? {
                Ok(on_aws) => on_aws,
                Err(local_id) => return emit(out, local_answer(Some(&env), &local_id, &machine)),
            };
            // The address first: an endpoint that cannot answer changes no rule.
            let address = checkip::public_address(&checkip::endpoint(config.as_ref()))?;
            let aws = Aws::connect(&region)?;
            let instance = ingress::find(&aws, &id)?;
            let changes = ingress::allow_current(
                &aws,
                &instance,
                &machine,
                address,
                &state_root(config.as_ref()),
                replace,
            )?;
            report(&changes);
            let mut access = ingress::show(&aws, &instance, Some(&env), &machine, Some(address))?;
            access.changes = changes;
            emit(out, access)
        }
        AccessCommand::Revoke {
            env,
            target,
            machine: named,
            confirm,
        } => {
            let (id, region) = match guarded(global, config.as_ref(), &env, &target, &confirm)? {
                Ok(on_aws) => on_aws,
                Err(local_id) => return emit(out, local_answer(Some(&env), &local_id, &machine)),
            };
            let whose = match &named {
                Some(name) => check_machine_name(name)?,
                None => machine.clone(),
            };
            let aws = Aws::connect(&region)?;
            let instance = ingress::find(&aws, &id)?;
            let changes = ingress::revoke_machine(
                &aws,
                &instance,
                &whose,
                &state_root(config.as_ref()),
                whose == machine,
            )?;
            report(&changes);
            let mut access = ingress::show(&aws, &instance, Some(&env), &machine, None)?;
            access.changes = changes;
            emit(out, access)
        }
    }
}

/// The env's AWS instance and region, once the guard allows changing who reaches it; the
/// local instance's id (`Err`) when the env is on the local provider, which needs no rule.
fn guarded(
    global: &GlobalArgs,
    config: Option<&Config>,
    env: &str,
    target: &AccessTarget,
    confirm: &ConfirmArgs,
) -> Result<std::result::Result<(String, String), String>> {
    match locate(config, Some(env), target)? {
        Located::Local { id } => Ok(Err(id)),
        Located::Aws { id, region } => {
            guard_locked(global, env, &id, confirm, config)?;
            Ok(Ok((id, region)))
        }
    }
}

/// The instance: `--instance`, the spec's for the env, or the config's for the env.
pub(super) fn locate(
    config: Option<&Config>,
    env: Option<&str>,
    target: &AccessTarget,
) -> Result<Located> {
    let region_or = |fallback: Option<String>| {
        target
            .region
            .clone()
            .or(fallback)
            .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
            .ok_or_else(|| Error::BadInput("no region: pass --region or set AWS_REGION".into()))
    };
    if let Some(id) = &target.instance {
        dbtools::names::check_instance_id(id)?;
        return Ok(Located::Aws {
            id: id.clone(),
            region: region_or(None)?,
        });
    }
    let env = env.ok_or_else(|| {
        Error::BadInput("access: name the env (or the instance with --instance ID)".into())
    })?;
    if let Some(path) = &target.spec {
        let spec = super::common::read_spec(path)?;
        let instance = super::common::instance_of(&spec, env)?;
        return Ok(Located::Aws {
            id: instance.id.clone(),
            region: region_or(Some(spec.region.clone()))?,
        });
    }
    let config = config.ok_or_else(|| {
        Error::BadInput(format!(
            "access {env}: no dbtools.toml here: pass --spec FILE (the AWS spec) or --instance ID"
        ))
    })?;
    let env_config = config.env(env)?;
    let id = env_config.instance.clone().ok_or_else(|| {
        Error::BadInput(format!(
            "env {env} names no instance (a host only): pass --spec FILE or --instance ID"
        ))
    })?;
    let instance = &config.instances[&id];
    match instance.provider {
        Provider::Local => Ok(Located::Local { id }),
        Provider::Aws => Ok(Located::Aws {
            region: region_or(instance.region.clone())?,
            id,
        }),
    }
}

fn local_answer(env: Option<&str>, id: &str, machine: &str) -> Access {
    Access {
        provider: Provider::Local,
        env: env.map(str::to_string),
        instance: id.to_string(),
        region: None,
        status: None,
        publicly_accessible: Some(false),
        security_group: None,
        address: None,
        machine: machine.to_string(),
        admitted: true,
        rules: Vec::new(),
        changes: Vec::new(),
        note: Some(
            "a local instance listens on loopback (127.0.0.1) and needs no rule: every program on this machine reaches it, nothing else does".into(),
        ),
    }
}

/// On a locked env, changing who may connect is destructive-class: --confirm and
/// --break-glass, audited. Other envs need nothing typed. The protection is the strictest of
/// the named env's and of every env whose instance this is, so `--instance` cannot sidestep
/// a locked env by naming an open one.
fn guard_locked(
    global: &GlobalArgs,
    env: &str,
    id: &str,
    confirm: &ConfirmArgs,
    config: Option<&Config>,
) -> Result<()> {
    let (_, named) = super::common::env_protection(global, env);
    let (guarded_env, protection) = config
        .into_iter()
        .flat_map(|c| c.envs.iter().map(move |(name, e)| (name, e, c)))
        .filter(|(_, e, _)| e.instance.as_deref() == Some(id))
        .map(|(name, _, c)| (name.clone(), c.protection(name)))
        .fold((env.to_string(), named), |strictest, candidate| {
            if candidate.1 > strictest.1 {
                candidate
            } else {
                strictest
            }
        });
    if protection != Protection::Locked {
        return Ok(());
    }
    let guard = Guard::for_instance(TOOL, "access", &guarded_env, protection, id, config)?;
    let confirmation = confirm.confirmation();
    guard.check_protection(&confirmation)?;
    guard.record_allowed(None, &confirmation)
}

/// This machine's name in its rule: DBTOOLS_MACHINE_NAME, `[access] machine`, else
/// user@host made safe for a rule description.
fn machine_name(config: Option<&Config>) -> Result<String> {
    if let Some(name) = std::env::var(envvars::DBTOOLS_MACHINE_NAME)
        .ok()
        .filter(|n| !n.is_empty())
    {
        return check_machine_name(&name);
    }
    if let Some(name) = config.and_then(|c| c.access.machine.clone()) {
        return check_machine_name(&name);
    }
    Ok(identity::user_at_host()
        .chars()
        .map(|c| if allowed_in_name(c) { c } else { '-' })
        .take(200)
        .collect())
}

fn allowed_in_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+' | '=')
}

fn check_machine_name(name: &str) -> Result<String> {
    if name.is_empty() || name.len() > 200 || !name.chars().all(allowed_in_name) {
        return Err(Error::BadInput(format!(
            "machine name {name:?}: use 1 to 200 letters, digits and . _ - @ + ="
        )));
    }
    Ok(name.to_string())
}

/// Where this machine keeps what it added (next to its audit log).
fn state_root(config: Option<&Config>) -> std::path::PathBuf {
    dbtools::guard::audit_log_path(config)
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

fn emit(out: Output, access: Access) -> Result<ExitStatus> {
    out.emit(&access, || render(&access))?;
    Ok(ExitStatus::Success)
}

fn render(access: &Access) -> String {
    let mut text = output::key_values(&[
        ("instance", access.instance.clone()),
        ("provider", access.provider.to_string()),
        ("status", access.status.clone().unwrap_or_default()),
        (
            "public",
            access
                .publicly_accessible
                .map(|p| p.to_string())
                .unwrap_or_default(),
        ),
        (
            "security group",
            access.security_group.clone().unwrap_or_default(),
        ),
        ("this machine", access.machine.clone()),
        (
            "its address",
            access.address.clone().unwrap_or_else(|| "-".into()),
        ),
        ("admitted", access.admitted.to_string()),
    ]);
    if !access.rules.is_empty() {
        let rows: Vec<Vec<String>> = access
            .rules
            .iter()
            .map(|r| {
                vec![
                    r.source.clone(),
                    r.origin.clone(),
                    r.description.clone().unwrap_or_default(),
                ]
            })
            .collect();
        text.push('\n');
        text.push_str(&output::table(&["SOURCE", "FROM", "DESCRIPTION"], &rows));
    }
    if let Some(note) = &access.note {
        text.push_str(&format!("\n{note}\n"));
    }
    text
}
