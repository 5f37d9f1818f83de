//! `dbmigrate`: dbmate-compatible migrations — files, the `schema_migrations` table — applied
//! with each migration in its own transaction and the whole run in a handful of round trips.

mod cli;
mod commands;
mod database;
mod dump;
mod engine;
mod schema;
mod verify;
mod watch;

fn main() -> std::process::ExitCode {
    dbtools::cli::main("dbmigrate", commands::run)
}
