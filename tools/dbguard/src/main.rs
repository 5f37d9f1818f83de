//! `dbguard`: the guardrails for scripts — stamp a database with its env, check an action
//! before running it, list the audit, lint SQL for destructive statements. The same guard runs
//! inside every tool that writes; this binary lets a shell line ask it too.

mod cli;
mod commands;

fn main() -> std::process::ExitCode {
    dbtools::cli::main("dbguard", commands::run)
}
