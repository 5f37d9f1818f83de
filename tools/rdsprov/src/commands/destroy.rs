//! `rdsprov destroy --env E [--env E …]`: delete envs' instances (destructive). Every env
//! whose data is on an instance must be confirmed, whatever env name reached it — the stamps
//! in its databases decide (its record or tags when they cannot be read; no record at all
//! counts as locked) — and each env named keeps its own confirmation: the guard has its say
//! for every one before any is touched. Local: with data and secrets. AWS (`--spec`): the
//! instance id is typed too, a final snapshot is taken unless skipped (open envs only), and
//! the envs are deleted at once.

use super::common::{
    emit_local, env_protection, instance_of, local_config, poll_interval, read_spec, TOOL,
};
use crate::aws::destroy::{self, DestroyOptions};
use crate::aws::progress::{all_envs, each_env, Interrupt, Progress};
use crate::aws::Aws;
use crate::cli::DestroyArgs;
use crate::local::{self, LocalProvider};
use dbtools::cli::GlobalArgs;
use dbtools::contract::Protection;
use dbtools::guard::Guard;

use dbtools::output::Output;
use dbtools::{cli, ExitStatus, Result};

pub(super) fn aws(out: Output, global: &GlobalArgs, args: DestroyArgs) -> Result<ExitStatus> {
    let path = args.spec.as_deref().expect("destroy::aws has a spec");
    let spec = read_spec(path)?;
    let mut chosen = Vec::new();
    for env in &args.envs {
        let instance = instance_of(&spec, env)?;
        if !chosen
            .iter()
            .any(|c: &&crate::aws::spec::InstanceSpec| c.env == instance.env)
        {
            chosen.push(instance);
        }
    }
    let aws = Aws::connect(&spec.region)?;
    // Every env's guard first, one after the other: nothing is deleted unless each is
    // confirmed.
    let mut allowed = Vec::new();
    let mut guards = Vec::new();
    let confirmation = args.confirm.confirmation();
    for instance in &chosen {
        let (config, protection) = env_protection(global, &instance.env);
        let options = DestroyOptions {
            confirmation: args.confirm.confirmation(),
            protection,
            disable_deletion_protection: args.disable_deletion_protection,
            skip_final_snapshot: args.skip_final_snapshot,
            sslrootcert: args.sslrootcert.clone(),
        };
        let (ok, guard) = destroy::allow(&aws, instance, &options, config.as_ref())?;
        allowed.push((*instance, ok));
        guards.push(guard);
    }
    for guard in &guards {
        guard.record_allowed(None, &confirmation)?;
    }
    let interrupt = Interrupt::catch();
    let done = all_envs(each_env(
        &allowed,
        |(instance, _)| instance.env.clone(),
        |(instance, allowed)| {
            let mut progress = Progress::new(&instance.env, poll_interval(), interrupt.sigint());
            destroy::destroy(&aws, instance, allowed, &mut progress)
                .map_err(|e| progress.failure(e, "destroy"))?;
            Ok(progress.into_done())
        },
    ))?;
    let changes: Vec<String> = done.into_iter().flatten().collect();
    let resources = dbtools::contract::Resources {
        provider: dbtools::contract::Provider::Aws,
        changes,
        instances: Vec::new(),
    };
    out.emit(&resources, || resources.changes.join("\n") + "\n")?;
    Ok(ExitStatus::Success)
}

pub(super) fn local(out: Output, global: &GlobalArgs, args: DestroyArgs) -> Result<ExitStatus> {
    let config = local_config(global)?;
    let provider = LocalProvider {
        state: &config.state,
    };
    let mut changes = Vec::new();
    let confirmation = args.confirm.confirmation();
    let _lock = provider.lock()?;
    // Every env's guard first: nothing goes unless each is confirmed.
    let mut chosen: Vec<(&str, local::InstanceSpec)> = Vec::new();
    for env in &args.envs {
        for spec in local::instance_specs(&config, std::slice::from_ref(env))? {
            if !chosen.iter().any(|(_, c)| c.id == spec.id) {
                chosen.push((env, spec));
            }
        }
    }
    let mut allowed = Vec::new();
    for (env, spec) in &chosen {
        // Every env whose data is on the instance is at risk, whatever env name
        // reached it: the stamps in its databases (the record when they cannot be
        // read; no record at all counts as locked), and the config's envs on it.
        let mut at_risk: Vec<(String, Protection)> = spec
            .databases
            .iter()
            .map(|d| (d.env.clone(), config.protection(&d.env)))
            .chain([(env.to_string(), config.protection(env))])
            .collect();
        let source = match provider.stakes(&spec.id)? {
            Some(stakes) => {
                at_risk.extend(stakes.stamps.into_iter().map(|s| {
                    let level = s.protection.unwrap_or(Protection::Open);
                    let level = dbtools::guard::floor(&s.env, level, Some(&config));
                    (s.env, level)
                }));
                if stakes.read_live {
                    " (the stamps read from its databases)"
                } else {
                    " (its instance record: its databases cannot be read now)"
                }
            }
            None if provider.exists(&spec.id) => {
                at_risk.push((env.to_string(), Protection::Locked));
                " (it has no instance record, so it counts as locked)"
            }
            None => "",
        };
        let strictest = at_risk
            .iter()
            .map(|(_, level)| *level)
            .max()
            .unwrap_or(Protection::Locked);
        let guard = Guard::for_instance(TOOL, "destroy", env, strictest, &spec.id, Some(&config))?;
        if let Some(reason) =
            dbtools::guard::instance_refusal("destroy", &spec.id, &at_risk, &confirmation)
        {
            return Err(guard.refuse(None, format!("{reason}{source}")));
        }
        allowed.push(guard);
    }
    for guard in &allowed {
        guard.record_allowed(None, &confirmation)?;
    }
    for (_, spec) in &chosen {
        cli::note(
            TOOL,
            format!(
                "destroying instance {} (stopping its server, removing its data and secrets)",
                spec.id
            ),
        );
        let done = provider.destroy(spec)?;
        done.iter().for_each(|change| cli::note(TOOL, change));
        changes.extend(done);
    }
    emit_local(out, changes, Vec::new())
}
