//! `rdsprov plan|apply|status --spec FILE` on AWS: read the spec, observe, plan, and for
//! `apply` make the changes; print the plan or the resources (JSON when piped, a table on a
//! terminal).

use crate::aws::{apply, databases, ops, plan, pricing, spec, tenant, Aws};
use dbtools::cli::{ConfirmArgs, GlobalArgs};
use dbtools::config::{self, Config};
use dbtools::contract::PlanAction;
use dbtools::contract::{self, Instance, Plan, PlannedChange, Resources};
use dbtools::output::{self, Output};
use dbtools::{cli, input, Error, ExitStatus, Result};
use std::path::Path;
use std::time::Duration;

const TOOL: &str = "rdsprov";

/// The spec from a file, or from stdin with `-`.
pub(crate) fn read_spec(path: &Path) -> Result<spec::Spec> {
    if path == Path::new("-") {
        let bytes = input::read_stdin()?;
        let text = contract::decode_text(&bytes)?;
        return spec::parse(&text, "on stdin");
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::BadInput(format!("cannot read spec {}: {e}", path.display())))?;
    spec::parse(&text, &path.display().to_string())
}

/// Seconds between status polls while waiting (RDSPROV_POLL_SECONDS; 15 by default).
pub(crate) fn poll_interval() -> Duration {
    std::env::var("RDSPROV_POLL_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(Duration::from_secs(15))
}

pub(crate) fn plan(out: Output, path: &Path) -> Result<ExitStatus> {
    let spec = read_spec(path)?;
    let aws = Aws::connect(&spec.region)?;
    let mut changes: Vec<PlannedChange> = Vec::new();
    for instance in &spec.instances {
        let observed = plan::observe(&aws, instance)?;
        changes.extend(plan::plan(instance, &observed));
    }
    let result = Plan {
        provider: dbtools::contract::Provider::Aws,
        region: spec.region.clone(),
        up_to_date: changes.iter().all(|c| c.action == PlanAction::None),
        changes,
        cost: pricing::estimate(&spec.instances),
    };
    out.emit(&result, || render_plan(&result))?;
    Ok(ExitStatus::Success)
}

/// `rdsprov apply --spec`: converge every instance; with `--sslrootcert` (the RDS CA bundle)
/// also upgrade each instance's stamped databases in place (`aws::databases::upgrade`).
pub(crate) fn apply(out: Output, path: &Path, sslrootcert: Option<&Path>) -> Result<ExitStatus> {
    let spec = read_spec(path)?;
    let aws = Aws::connect(&spec.region)?;
    let mut changes = Vec::new();
    let mut instances: Vec<Instance> = Vec::new();
    for instance in &spec.instances {
        let observed = plan::observe(&aws, instance)?;
        let planned = plan::plan(instance, &observed);
        let applied = apply::apply(&aws, instance, &observed, &planned, poll_interval())?;
        for change in &applied.changes {
            cli::note(TOOL, change);
        }
        changes.extend(applied.changes);
        instances.push(applied.instance);
        if sslrootcert.is_some() {
            let access = databases::MasterAccess::of(
                &aws,
                instance,
                instance,
                sslrootcert,
                "apply --sslrootcert",
            )?;
            let upgraded = databases::upgrade(&aws, instance, &access)?;
            for change in &upgraded {
                cli::note(TOOL, change);
            }
            changes.extend(upgraded);
        }
    }
    if changes.is_empty() {
        cli::note(TOOL, "nothing to change");
    }
    let resources = Resources {
        provider: dbtools::contract::Provider::Aws,
        changes,
        instances,
    };
    out.emit(&resources, || render_instances(&resources.instances))?;
    Ok(ExitStatus::Success)
}

pub(crate) fn status(out: Output, path: &Path) -> Result<ExitStatus> {
    let spec = read_spec(path)?;
    let aws = Aws::connect(&spec.region)?;
    let mut instances = Vec::new();
    for instance in &spec.instances {
        match observed_instance(&aws, instance)? {
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
    emit_instances(out, instances)
}

/// `rdsprov tenant add NAME --env ENV --spec FILE`; the project's config, when there is one,
/// names the env app roles a tenant must not take.
pub(crate) fn tenant_add(
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
    let tenant = crate::tenant::checked_tenant(env, name, &instance.master_user, config.as_ref())?;
    let aws = Aws::connect(&spec.region)?;
    let (changes, record) = tenant::add(&aws, instance, &tenant, iam, sslrootcert)?;
    for change in &changes {
        cli::note(TOOL, change);
    }
    if changes.is_empty() {
        cli::note(TOOL, "nothing to change");
    }
    let mut found = observed_instance(&aws, instance)?
        .ok_or_else(|| Error::Failed(format!("instance {} vanished", instance.id)))?;
    found.databases.push(record);
    let resources = Resources {
        provider: dbtools::contract::Provider::Aws,
        changes,
        instances: vec![found],
    };
    out.emit(&resources, || render_instances(&resources.instances))?;
    Ok(ExitStatus::Success)
}

/// The project's config, when there is one, and the env's protection: the config's, or the
/// default for its name (an AWS spec can be used without a dbtools.toml).
pub(crate) fn env_protection(
    global: &GlobalArgs,
    env: &str,
) -> (Option<Config>, dbtools::contract::Protection) {
    let config = Config::find(global.config.as_deref()).ok().flatten();
    let protection = config
        .as_ref()
        .filter(|c| c.envs.contains_key(env))
        .map(|c| c.protection(env))
        .unwrap_or_else(|| config::default_protection(env));
    (config, protection)
}

/// `rdsprov restore`: through the guard (action `restore`, the env's protection), then into a
/// new instance with the live one's security group.
/// Where a restore goes beyond the new instance itself: the env that adopts its databases
/// (`--for ENV`), reached with the RDS CA bundle.
pub(crate) struct Adoption<'a> {
    pub env: &'a str,
    pub sslrootcert: Option<&'a Path>,
}

/// What `rdsprov restore` is asked for.
pub(crate) struct RestoreArgs<'a> {
    pub env: &'a str,
    pub target_id: &'a str,
    pub source: ops::RestoreSource,
    pub confirm: &'a ConfirmArgs,
    pub adoption: Option<Adoption<'a>>,
}

pub(crate) fn restore(
    out: Output,
    global: &GlobalArgs,
    path: &Path,
    args: RestoreArgs,
) -> Result<ExitStatus> {
    let RestoreArgs {
        env,
        target_id,
        source,
        confirm,
        adoption,
    } = args;
    let source = &source;
    let spec = read_spec(path)?;
    let instance = instance_of(&spec, env)?;
    let (config, protection) = env_protection(global, env);
    let guard = dbtools::guard::Guard::for_instance(
        TOOL,
        "restore",
        env,
        protection,
        &instance.id,
        config.as_ref(),
    )?;
    let confirmation = confirm.confirmation();
    guard.check_protection(&confirmation)?;
    if let Some(adoption) = &adoption {
        dbtools::names::check_env_name(adoption.env)?;
        // The CA bundle is checked before AWS is asked for anything.
        if adoption.sslrootcert.is_none_or(|p| !p.is_file()) {
            return Err(Error::BadInput(format!(
                "restore --for {} adopts the restored databases over verify-full TLS: pass --sslrootcert with the RDS CA bundle (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)",
                adoption.env
            )));
        }
    }
    guard.record_allowed(None, &confirmation)?;
    let aws = Aws::connect(&spec.region)?;
    let live = plan::observe(&aws, instance)?;
    let mut changes = ops::restore(
        &aws,
        instance,
        source,
        target_id,
        live.security_group.map(|g| g.0),
        poll_interval(),
    )?;
    for change in &changes {
        cli::note(TOOL, change);
    }
    if let Some(adoption) = &adoption {
        let mut restored = instance.clone();
        restored.id = target_id.to_string();
        let level = env_protection(global, adoption.env).1;
        let adopted = databases::MasterAccess::of(
            &aws,
            &restored,
            instance,
            adoption.sslrootcert,
            "restore --for",
        )
        .and_then(|access| {
            databases::adopt_restored(&aws, target_id, &access, adoption.env, level, &instance.id)
        })
        .map_err(|e| {
            let message = format!(
                "{target_id} is restored, but adopting its databases for env {} failed: {}; once it is reachable, point env {} at it and run `dbguard adopt {}`",
                adoption.env,
                e.message(),
                adoption.env,
                adoption.env
            );
            match e {
                Error::Unreachable(_) => Error::Unreachable(message),
                _ => Error::Failed(message),
            }
        })?;
        for change in &adopted {
            cli::note(TOOL, change);
        }
        changes.extend(adopted);
    }
    let mut target = instance.clone();
    target.id = target_id.to_string();
    let restored = observed_instance(&aws, &target)?
        .ok_or_else(|| Error::Failed(format!("instance {target_id} vanished after the restore")))?;
    let resources = Resources {
        provider: dbtools::contract::Provider::Aws,
        changes,
        instances: vec![restored],
    };
    out.emit(&resources, || render_instances(&resources.instances))?;
    Ok(ExitStatus::Success)
}

/// `rdsprov wait`: until the env's instance is `available` (Ctrl-C stops it with exit 130).
pub(crate) fn wait(out: Output, path: &Path, env: &str) -> Result<ExitStatus> {
    let spec = read_spec(path)?;
    let instance = instance_of(&spec, env)?;
    let aws = Aws::connect(&spec.region)?;
    apply::wait_available(&aws, instance, poll_interval())?;
    let found = observed_instance(&aws, instance)?.ok_or_else(|| {
        Error::Failed(format!("instance {} vanished after the wait", instance.id))
    })?;
    emit_instances(out, vec![found])
}

fn emit_instances(out: Output, instances: Vec<Instance>) -> Result<ExitStatus> {
    let resources = Resources {
        provider: dbtools::contract::Provider::Aws,
        changes: Vec::new(),
        instances,
    };
    out.emit(&resources, || render_instances(&resources.instances))?;
    Ok(ExitStatus::Success)
}

/// `rdsprov registry --spec F`: DATABASE_REGISTRY.md on stdout, from describe calls.
pub(crate) fn registry(path: &Path) -> Result<ExitStatus> {
    cli::stdout_is_text();
    let spec = read_spec(path)?;
    let aws = Aws::connect(&spec.region)?;
    let mut rows = Vec::new();
    for instance in &spec.instances {
        let observed = plan::observe(&aws, instance)?;
        let attribute = |name: &str| {
            observed
                .instance
                .as_ref()
                .and_then(|s| s.attributes.get(name).cloned())
                .unwrap_or_default()
        };
        let details = crate::registry::Details {
            storage: if instance.is_aurora() {
                format!(
                    "Aurora storage (grows by itself); Serverless v2 {}–{} ACU",
                    attribute("min_acu"),
                    attribute("max_acu")
                )
            } else {
                format!("{} GB gp3", attribute("storage_gb"))
            },
            multi_az: attribute("multi_az"),
            backups: format!(
                "{} days, window {}",
                attribute("backup_retention_days"),
                attribute("backup_window")
            ),
            deletion_protection: attribute("deletion_protection"),
        };
        let Some(mut found) = plan::record(&aws.region, instance, observed) else {
            cli::note(
                TOOL,
                format!(
                    "env {}: instance {} does not exist",
                    instance.env, instance.id
                ),
            );
            continue;
        };
        found.databases = tenant::list(&aws, instance)?;
        rows.push((found, details));
    }
    let cost = pricing::estimate(&spec.instances);
    let text = crate::registry::render("aws", &dbtools::time::rfc3339_now(), &rows, Some(&cost));
    output::write_stdout(&text)?;
    Ok(ExitStatus::Success)
}

/// The env's instance as AWS describes it, or None when it does not exist.
fn observed_instance(aws: &Aws, instance: &spec::InstanceSpec) -> Result<Option<Instance>> {
    let observed = plan::observe(aws, instance)?;
    Ok(plan::record(&aws.region, instance, observed))
}

fn render_plan(plan: &Plan) -> String {
    let mut text = String::new();
    for change in &plan.changes {
        text.push_str(&format!(
            "{:6} {} {} (env {})\n",
            change.action, change.resource, change.name, change.env
        ));
        for attribute in &change.attributes {
            text.push_str(&format!(
                "         {}: {} → {} ({})\n",
                attribute.name,
                attribute.from.clone().unwrap_or_else(|| "-".into()),
                attribute.to,
                attribute.when
            ));
        }
    }
    if plan.up_to_date {
        text.push_str("nothing to change\n");
    }
    text.push_str(&format!(
        "\nestimated cost: ${:.2}/month ({}; prices as of {})\n",
        plan.cost.monthly_usd, plan.cost.label, plan.cost.prices_as_of
    ));
    for line in &plan.cost.lines {
        text.push_str(&format!(
            "  {} {}: ${:.2} — {}\n",
            line.env, line.id, line.monthly_usd, line.detail
        ));
    }
    text
}

fn render_instances(instances: &[Instance]) -> String {
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

pub(crate) fn instance_of<'a>(spec: &'a spec::Spec, env: &str) -> Result<&'a spec::InstanceSpec> {
    spec.instances.iter().find(|i| i.env == env).ok_or_else(|| {
        let known: Vec<&str> = spec.instances.iter().map(|i| i.env.as_str()).collect();
        Error::BadInput(format!(
            "the spec has no env {env:?} (it has {})",
            known.join(", ")
        ))
    })
}

pub(crate) fn snapshot(
    out: Output,
    path: &Path,
    env: &str,
    name: Option<&str>,
) -> Result<ExitStatus> {
    let spec = read_spec(path)?;
    let instance = instance_of(&spec, env)?;
    let aws = Aws::connect(&spec.region)?;
    let taken = ops::snapshot(&aws, ops::Subject::of(instance), name, poll_interval())?;
    cli::note(
        TOOL,
        format!(
            "snapshot {} of {} is {}",
            taken.snapshot, taken.instance, taken.status
        ),
    );
    emit_snapshot(out, &taken)
}

/// A snapshot's JSON, or its fields on a terminal.
pub(crate) fn emit_snapshot(out: Output, taken: &contract::Snapshot) -> Result<ExitStatus> {
    out.emit(taken, || {
        output::key_values(&[
            ("env", taken.env.clone()),
            ("instance", taken.instance.clone()),
            ("snapshot", taken.snapshot.clone()),
            ("status", taken.status.clone()),
        ])
    })?;
    Ok(ExitStatus::Success)
}

/// `rdsprov destroy --spec`'s own flags.
pub(crate) struct DestroyFlags {
    pub disable_deletion_protection: bool,
    pub skip_final_snapshot: bool,
    pub sslrootcert: Option<std::path::PathBuf>,
}

pub(crate) fn destroy(
    out: Output,
    global: &GlobalArgs,
    path: &Path,
    env: &str,
    confirm: &ConfirmArgs,
    flags: DestroyFlags,
) -> Result<ExitStatus> {
    let spec = read_spec(path)?;
    let instance = instance_of(&spec, env)?;
    let (config, protection) = env_protection(global, env);
    let aws = Aws::connect(&spec.region)?;
    let options = ops::DestroyOptions {
        confirmation: confirm.confirmation(),
        protection,
        disable_deletion_protection: flags.disable_deletion_protection,
        skip_final_snapshot: flags.skip_final_snapshot,
        sslrootcert: flags.sslrootcert,
    };
    let changes = ops::destroy(&aws, instance, &options, config.as_ref(), poll_interval())?;
    for change in &changes {
        cli::note(TOOL, change);
    }
    let resources = Resources {
        provider: dbtools::contract::Provider::Aws,
        changes,
        instances: Vec::new(),
    };
    out.emit(&resources, || resources.changes.join("\n") + "\n")?;
    Ok(ExitStatus::Success)
}

fn region_or_environment(region: Option<&str>, verb: &str) -> Result<String> {
    region
        .map(str::to_string)
        .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
        .ok_or_else(|| {
            Error::BadInput(format!(
                "{verb}: no region: pass --region or set AWS_REGION"
            ))
        })
}

/// `rdsprov stamps`: what the instance's tags record (see `aws::stamps`).
pub(crate) fn stamps(out: Output, instance: &str, region: Option<&str>) -> Result<ExitStatus> {
    dbtools::names::check_instance_id(instance)?;
    let aws = Aws::connect(&region_or_environment(region, "stamps")?)?;
    let (endpoint, stamps) = crate::aws::stamps::recorded_with_endpoint(&aws, instance)?
        .ok_or_else(|| {
            Error::BadInput(format!(
                "no RDS instance or Aurora cluster {instance} in {}",
                aws.region
            ))
        })?;
    let recorded = contract::RecordedStamps {
        instance: instance.to_string(),
        endpoint,
        stamps: stamps
            .into_iter()
            .map(|(database, stamp)| contract::DatabaseStamp { database, stamp })
            .collect(),
    };
    out.emit(&recorded, || {
        let rows: Vec<Vec<String>> = recorded
            .stamps
            .iter()
            .map(|s| {
                vec![
                    s.database.clone(),
                    s.stamp.env.clone(),
                    s.stamp.protection.as_str().to_string(),
                ]
            })
            .collect();
        output::table(&["DATABASE", "ENV", "PROTECTION"], &rows)
    })?;
    Ok(ExitStatus::Success)
}

/// `rdsprov stamp-record`: the stamp on stdin becomes a tag on the instance (see
/// `aws::stamps`). Prints nothing on success: the caller already reports the stamp.
pub(crate) fn stamp_record(
    instance: &str,
    database: &str,
    region: Option<&str>,
) -> Result<ExitStatus> {
    dbtools::names::check_instance_id(instance)?;
    dbtools::names::check_sql_name(database, "database name")?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
        .map_err(|e| Error::BadInput(format!("cannot read the stamp on stdin: {e}")))?;
    // UTF-8 with or without a byte-order mark, or UTF-16 with one (Windows PowerShell).
    let text = dbtools::contract::decode_text(&bytes)?;
    let recorded: dbtools::contract::RecordedStamp =
        serde_json::from_str(text.trim()).map_err(|e| {
            Error::BadInput(format!(
                "stamp-record: stdin is no stamp ({{\"env\",\"protection\",\"nonce\"}}): {e}"
            ))
        })?;
    dbtools::names::check_env_name(&recorded.env)?;
    if recorded.nonce.is_empty() || !recorded.nonce.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::BadInput(
            "stamp-record: the nonce must be hex digits".into(),
        ));
    }
    let aws = Aws::connect(&region_or_environment(region, "stamp-record")?)?;
    crate::aws::stamps::record(&aws, instance, database, &recorded)?;
    Ok(ExitStatus::Success)
}
