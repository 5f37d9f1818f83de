//! `dbseed`: per-environment seed data that is idempotent and safe — SQL files and CSV files
//! from `seeds/common/` and `seeds/<env>/`, each applied once in its own transaction with its
//! record, re-applied after an edit only when it proves idempotent, and never on a locked env
//! unless a file opts in.

mod cli;
mod commands;
mod engine;
mod files;

fn main() -> std::process::ExitCode {
    dbtools::cli::main("dbseed", commands::run)
}
