//! rdsprov's commands, one file per verb; each chooses the local provider (dbtools.toml) or
//! AWS (`--spec FILE`). What several verbs share is in `common`.

mod access;
mod apply;
mod common;
mod destroy;
mod plan;
mod registry;
mod reset;
mod restore;
mod secret;
mod snapshot;
mod stamps;
mod start;
mod status;
mod stop;
mod tenant;
mod wait;

use crate::cli::{Cli, Command, SecretCommand, TenantCommand};
use dbtools::output::Output;
use dbtools::{ExitStatus, Result};

pub(crate) fn run(cli: Cli) -> Result<ExitStatus> {
    let out = Output::detect(cli.global.json);
    let global = &cli.global;
    match cli.command {
        Command::Secret {
            command: SecretCommand::Get { id, region, reveal },
        } => secret::get(out, &id, region.as_deref(), reveal),
        Command::Secret {
            command:
                SecretCommand::IamToken {
                    host,
                    port,
                    user,
                    region,
                    reveal,
                },
        } => secret::iam_token(out, &host, port, &user, &region, reveal),
        Command::Plan { spec, selection } => plan::aws(out, &spec, &selection.envs),
        Command::Apply {
            spec: Some(spec),
            sslrootcert,
            selection,
        } => apply::aws(out, &spec, &selection.envs, sslrootcert.as_deref()),
        Command::Apply { selection, .. } => apply::local(out, global, &selection),
        Command::Status {
            spec: Some(spec),
            selection,
        } => status::aws(out, &spec, &selection.envs),
        Command::Status { selection, .. } => status::local(out, global, &selection),
        Command::Start { selection } => start::local(out, global, &selection),
        Command::Stop { selection } => stop::local(out, global, &selection),
        Command::Reset { env, confirm } => reset::local(out, global, env, &confirm),
        Command::Tenant {
            command:
                TenantCommand::Add {
                    name,
                    env,
                    spec: Some(spec),
                    iam,
                    sslrootcert,
                },
        } => tenant::aws(out, global, &spec, &env, &name, iam, sslrootcert.as_deref()),
        Command::Tenant {
            command: TenantCommand::Add { name, env, .. },
        } => tenant::local(out, global, env, &name),
        Command::Restore(args) => restore::aws(out, global, args),
        Command::Registry { spec: Some(spec) } => registry::aws(&spec),
        Command::Registry { spec: None } => registry::local(global),
        Command::Wait { spec, selection } => wait::aws(out, &spec, &selection.envs),
        Command::Snapshot {
            spec,
            env,
            name,
            before_migrate,
        } => snapshot::run(
            out,
            global,
            spec.as_deref(),
            env.as_deref(),
            name.as_deref(),
            before_migrate,
        ),
        Command::Access { command } => access::run(out, global, command),
        Command::StampRecord {
            instance,
            database,
            region,
        } => stamps::record(&instance, &database, region.as_deref()),
        Command::Stamps { instance, region } => stamps::show(out, &instance, region.as_deref()),
        Command::Destroy(args) if args.spec.is_some() => destroy::aws(out, global, args),
        Command::Destroy(args) => destroy::local(out, global, args),
    }
}
