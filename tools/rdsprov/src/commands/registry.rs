//! `rdsprov registry`: DATABASE_REGISTRY.md on stdout from the real state — with `--spec`, the
//! AWS instances (described at once) and their tenants; otherwise the local ones.

use super::common::{env_of, local_config, local_statuses, read_spec, TOOL};
use crate::aws::attributes::Name;
use crate::aws::progress::{all_envs, each_env};
use crate::aws::spec::InstanceSpec;
use crate::aws::{observe, pricing, tenants, Aws};
use crate::cli::Selection;
use crate::local::LocalProvider;
use dbtools::cli::GlobalArgs;
use dbtools::contract::Instance;
use dbtools::output;
use dbtools::{cli, ExitStatus, Result};
use std::path::Path;

/// `rdsprov registry --spec F`: DATABASE_REGISTRY.md on stdout, from describe calls.
pub(super) fn aws(path: &Path) -> Result<ExitStatus> {
    cli::stdout_is_text();
    let spec = read_spec(path)?;
    let aws = Aws::connect(&spec.region)?;
    let chosen: Vec<&InstanceSpec> = spec.instances.iter().collect();
    let observations = all_envs(each_env(&chosen, env_of, |instance| {
        let observed = observe::observe(&aws, instance)?;
        let databases = match observed.target {
            Some(_) => tenants::list(&aws, instance)?,
            None => Vec::new(),
        };
        Ok((observed, databases))
    }))?;
    let mut rows = Vec::new();
    for (instance, (observed, databases)) in chosen.into_iter().zip(observations) {
        let attribute = |name: Name| {
            observed
                .target
                .as_ref()
                .map(|s| s.get(name))
                .unwrap_or_default()
        };
        let details = crate::registry::Details {
            storage: if instance.is_aurora() {
                format!(
                    "Aurora storage (grows by itself); Serverless v2 {}–{} ACU",
                    attribute(Name::MinAcu),
                    attribute(Name::MaxAcu)
                )
            } else {
                format!("{} GB gp3", attribute(Name::StorageGb))
            },
            multi_az: attribute(Name::MultiAz),
            backups: format!(
                "{} days, window {}",
                attribute(Name::BackupRetentionDays),
                attribute(Name::BackupWindow)
            ),
            deletion_protection: attribute(Name::DeletionProtection),
        };
        let Some(mut found) = observe::record(&aws.region, instance, observed) else {
            cli::note(
                TOOL,
                format!(
                    "env {}: instance {} does not exist",
                    instance.env, instance.id
                ),
            );
            continue;
        };
        found.databases = databases;
        rows.push((found, details));
    }
    let cost = pricing::estimate(&spec.instances);
    let text = crate::registry::render("aws", &dbtools::time::rfc3339_now(), &rows, Some(&cost));
    output::write_stdout(&text)?;
    Ok(ExitStatus::Success)
}

/// DATABASE_REGISTRY.md for the local instances of dbtools.toml.
pub(super) fn local(global: &GlobalArgs) -> Result<ExitStatus> {
    cli::stdout_is_text();
    let config = local_config(global)?;
    let provider = LocalProvider {
        state: &config.state,
    };
    let rows: Vec<(Instance, crate::registry::Details)> =
        local_statuses(&config, &provider, &Selection::default())?
            .into_iter()
            .map(|mut instance| {
                // A local instance serves the envs whose databases it holds.
                let envs: std::collections::BTreeSet<&str> =
                    instance.databases.iter().map(|d| d.env.as_str()).collect();
                instance.env = Some(envs.into_iter().collect::<Vec<_>>().join(", "));
                let details = crate::registry::Details {
                    storage: "local disk".into(),
                    multi_az: "no".into(),
                    backups: "none (local provider)".into(),
                    deletion_protection: "guard only".into(),
                };
                (instance, details)
            })
            .collect();
    let text = crate::registry::render("local", &dbtools::time::rfc3339_now(), &rows, None);
    output::write_stdout(&text)?;
    Ok(ExitStatus::Success)
}
