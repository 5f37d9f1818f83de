//! rdsprov's commands over the local provider: apply, status, start, stop, destroy.

use crate::aws_secrets;
use crate::cli::{Cli, Command, SecretCommand, Selection, TenantCommand};
use crate::local::{self, LocalProvider};
use dbtools::cli::{ConfirmArgs, GlobalArgs};
use dbtools::config::Config;
use dbtools::contract::{self, Instance, Protection, Resources};
use dbtools::guard::Guard;
use dbtools::output::{self, Output};
use dbtools::{cli, ExitStatus, Result};

const TOOL: &str = "rdsprov";

pub(crate) fn run(cli: Cli) -> Result<ExitStatus> {
    let out = Output::detect(cli.global.json);
    match cli.command {
        Command::Secret {
            command: SecretCommand::Get { id, region, reveal },
        } => secret_get(out, &id, region.as_deref(), reveal),
        Command::Secret {
            command:
                SecretCommand::IamToken {
                    host,
                    port,
                    user,
                    region,
                    reveal,
                },
        } => iam_token(out, &host, port, &user, &region, reveal),
        Command::Plan { spec } => crate::aws::run::plan(out, &spec),
        Command::Apply {
            spec: Some(spec),
            sslrootcert,
            ..
        } => crate::aws::run::apply(out, &spec, sslrootcert.as_deref()),
        Command::Status {
            spec: Some(spec), ..
        } => crate::aws::run::status(out, &spec),
        Command::Apply { selection, .. } => provision(out, &cli.global, Local::Apply(selection)),
        Command::Status { selection, .. } => provision(out, &cli.global, Local::Status(selection)),
        Command::Start { selection } => provision(out, &cli.global, Local::Start(selection)),
        Command::Stop { selection } => provision(out, &cli.global, Local::Stop(selection)),
        Command::Reset { env, confirm } => {
            provision(out, &cli.global, Local::Reset { env, confirm })
        }
        Command::Tenant {
            command:
                TenantCommand::Add {
                    name,
                    env,
                    spec: Some(spec),
                    iam,
                    sslrootcert,
                },
        } => crate::aws::run::tenant_add(
            out,
            &cli.global,
            &spec,
            &env,
            &name,
            iam,
            sslrootcert.as_deref(),
        ),
        Command::Tenant {
            command: TenantCommand::Add { name, env, .. },
        } => provision(out, &cli.global, Local::AddTenant { env, name }),
        Command::Restore {
            spec,
            env,
            target,
            from_snapshot,
            to_time,
            latest,
            for_env,
            sslrootcert,
            confirm,
        } => {
            let source = match (from_snapshot, to_time, latest) {
                (Some(snapshot), None, false) => crate::aws::ops::RestoreSource::Snapshot(snapshot),
                (None, Some(time), false) => crate::aws::ops::RestoreSource::Time(time),
                (None, None, true) => crate::aws::ops::RestoreSource::Latest,
                _ => {
                    return Err(dbtools::Error::BadInput(
                        "restore: say where from: --from-snapshot ID, --to-time TIME or --latest"
                            .into(),
                    ))
                }
            };
            let adoption = for_env.as_deref().map(|env| crate::aws::run::Adoption {
                env,
                sslrootcert: sslrootcert.as_deref(),
            });
            crate::aws::run::restore(
                out,
                &cli.global,
                &spec,
                crate::aws::run::RestoreArgs {
                    env: &env,
                    target_id: &target,
                    source,
                    confirm: &confirm,
                    adoption,
                },
            )
        }
        Command::Registry { spec: Some(spec) } => crate::aws::run::registry(&spec),
        Command::Registry { spec: None } => local_registry(&cli.global),
        Command::Wait { spec, env } => crate::aws::run::wait(out, &spec, &env),
        Command::Snapshot {
            spec,
            env,
            name,
            before_migrate,
        } => crate::snapshot::run(
            out,
            &cli.global,
            spec.as_deref(),
            env.as_deref(),
            name.as_deref(),
            before_migrate,
        ),
        Command::Destroy {
            env,
            confirm,
            spec: Some(spec),
            disable_deletion_protection,
            skip_final_snapshot,
            sslrootcert,
        } => crate::aws::run::destroy(
            out,
            &cli.global,
            &spec,
            &env,
            &confirm,
            crate::aws::run::DestroyFlags {
                disable_deletion_protection,
                skip_final_snapshot,
                sslrootcert,
            },
        ),
        Command::Access { command } => crate::access::run(out, &cli.global, command),
        Command::StampRecord {
            instance,
            database,
            region,
        } => crate::aws::run::stamp_record(&instance, &database, region.as_deref()),
        Command::Stamps { instance, region } => {
            crate::aws::run::stamps(out, &instance, region.as_deref())
        }
        Command::Destroy { env, confirm, .. } => {
            provision(out, &cli.global, Local::Destroy { env, confirm })
        }
    }
}

/// What the local provider is asked to do.
enum Local {
    Apply(Selection),
    Status(Selection),
    Start(Selection),
    Stop(Selection),
    Reset { env: String, confirm: ConfirmArgs },
    Destroy { env: String, confirm: ConfirmArgs },
    AddTenant { env: String, name: String },
}

/// Prints an IAM auth token for `user` at `host:port`.
fn iam_token(
    out: Output,
    host: &str,
    port: u16,
    user: &str,
    region: &str,
    reveal: bool,
) -> Result<ExitStatus> {
    dbtools::names::check_sql_name(user, "user")?;
    let aws = crate::aws::Aws::connect(region)?;
    let token = crate::aws::iam_token::auth_token(
        host,
        port,
        user,
        region,
        &aws.credentials,
        std::time::SystemTime::now(),
    )?;
    let mut value = contract::SecretValue {
        source: dbtools::contract::SecretSource::AwsIam,
        reference: region.into(),
        username: Some(user.into()),
        password: token,
    };
    if !out.shows_secrets(reveal) {
        value.password = contract::REDACTED.into();
    }
    out.emit(&value, || {
        output::key_values(&[
            ("secret", format!("aws-iam:{region}")),
            ("username", user.to_string()),
            ("token", value.password.clone()),
        ])
    })?;
    Ok(ExitStatus::Success)
}

/// Prints an AWS secret. Needs no dbtools.toml: dbenv runs this for any profile with an aws-sm secret.
fn secret_get(out: Output, id: &str, region: Option<&str>, reveal: bool) -> Result<ExitStatus> {
    let value = aws_secrets::get_secret(id, region)?;
    let mut shown = value.clone();
    if !out.shows_secrets(reveal) {
        shown.password = contract::REDACTED.into();
    }
    out.emit(&shown, || {
        output::key_values(&[
            ("secret", format!("aws-sm:{}", shown.reference)),
            (
                "username",
                shown.username.clone().unwrap_or_else(|| "-".into()),
            ),
            ("password", shown.password.clone()),
        ])
    })?;
    Ok(ExitStatus::Success)
}

fn provision(out: Output, global: &GlobalArgs, command: Local) -> Result<ExitStatus> {
    refuse_on_windows()?;
    let config = Config::load(global.config.as_deref())?;
    let provider = LocalProvider {
        state: &config.state,
    };
    let mut changes = Vec::new();
    let mut instances = Vec::new();
    match command {
        Local::Apply(selection) => {
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
        }
        Local::Status(selection) => {
            instances = statuses(&config, &provider, &selection)?;
        }
        Local::Start(selection) => {
            let _lock = provider.lock()?;
            for spec in local::instance_specs(&config, &selection.envs)? {
                let done = provider.start(&spec.id)?;
                done.iter().for_each(|change| cli::note(TOOL, change));
                changes.extend(done);
            }
            instances = statuses(&config, &provider, &selection)?;
        }
        Local::Stop(selection) => {
            let _lock = provider.lock()?;
            for spec in local::instance_specs(&config, &selection.envs)? {
                let done = provider.stop(&spec.id)?;
                done.iter().for_each(|change| cli::note(TOOL, change));
                changes.extend(done);
            }
            instances = statuses(&config, &provider, &selection)?;
        }
        Local::Reset { env, confirm } => {
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
            instances = statuses(&config, &provider, &Selection { envs: vec![env] })?;
        }
        Local::AddTenant { env, name } => {
            let specs = local::instance_specs(&config, std::slice::from_ref(&env))?;
            let tenant =
                crate::tenant::checked_tenant(&env, &name, &specs[0].master_user, Some(&config))?;
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
        }
        Local::Destroy { env, confirm } => {
            let specs = local::instance_specs(&config, std::slice::from_ref(&env))?;
            let confirmation = confirm.confirmation();
            let _lock = provider.lock()?;
            for spec in &specs {
                // Every env whose data is on the instance is at risk, whatever env name
                // reached it: the stamps in its databases (the record when they cannot be
                // read; no record at all counts as locked), and the config's envs on it.
                let mut at_risk: Vec<(String, Protection)> = spec
                    .databases
                    .iter()
                    .map(|d| (d.env.clone(), config.protection(&d.env)))
                    .chain([(env.clone(), config.protection(&env))])
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
                        at_risk.push((env.clone(), Protection::Locked));
                        " (it has no instance record, so it counts as locked)"
                    }
                    None => "",
                };
                let strictest = at_risk
                    .iter()
                    .map(|(_, level)| *level)
                    .max()
                    .unwrap_or(Protection::Locked);
                let guard =
                    Guard::for_instance(TOOL, "destroy", &env, strictest, &spec.id, Some(&config))?;
                if let Some(reason) =
                    dbtools::guard::instance_refusal("destroy", &spec.id, &at_risk, &confirmation)
                {
                    return Err(guard.refuse(None, format!("{reason}{source}")));
                }
                guard.record_allowed(None, &confirmation)?;
            }
            for spec in &specs {
                cli::note(TOOL, format!("destroying instance {} (stopping its server, removing its data and secrets)", spec.id));
                let done = provider.destroy(spec)?;
                done.iter().for_each(|change| cli::note(TOOL, change));
                changes.extend(done);
            }
        }
    }
    let resources = Resources {
        provider: dbtools::contract::Provider::Local,
        changes,
        instances,
    };
    out.emit(&resources, || render(&resources))?;
    Ok(ExitStatus::Success)
}

/// The local provider's commands on Windows: a refusal saying what to use there.
fn refuse_on_windows() -> Result<()> {
    if cfg!(windows) {
        return Err(dbtools::Error::BadInput(
            dbtools::server::WINDOWS_REFUSAL.to_string(),
        ));
    }
    Ok(())
}

/// DATABASE_REGISTRY.md for the local instances of dbtools.toml.
fn local_registry(global: &GlobalArgs) -> Result<ExitStatus> {
    refuse_on_windows()?;
    cli::stdout_is_text();
    let config = Config::load(global.config.as_deref())?;
    let provider = LocalProvider {
        state: &config.state,
    };
    let rows: Vec<(Instance, crate::registry::Details)> =
        statuses(&config, &provider, &Selection::default())?
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

fn statuses(
    config: &Config,
    provider: &LocalProvider,
    selection: &Selection,
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
fn render(resources: &Resources) -> String {
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
fn database_name<'a>(spec: &'a local::InstanceSpec, env: &str) -> &'a str {
    spec.databases
        .iter()
        .find(|d| d.env == env)
        .map_or("-", |d| d.name.as_str())
}
