//! `rdsprov`: database instances as code. The `local` provider runs real PostgreSQL on loopback
//! (TLS, scram-sha-256, least-privilege app roles) and prints the same resource JSON the AWS
//! provider makes from a spec: RDS for PostgreSQL with its security group, parameter group and
//! master secret.

mod aws;
mod checkip;
mod cli;
mod commands;
mod local;
mod registry;
mod tenancy;

#[cfg(test)]
mod layering;

fn main() -> std::process::ExitCode {
    dbtools::cli::main("rdsprov", commands::run)
}
