//! `dbenv`: environment profiles — list the envs, resolve one into a profile (password from its
//! secret), export it for libpq, psql, URLs and service files.

mod cli;
mod commands;
mod import;

fn main() -> std::process::ExitCode {
    dbtools::cli::main("dbenv", commands::run)
}
