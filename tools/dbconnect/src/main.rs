//! `dbconnect`: prove a connection works (the witness), wait for a database, print its URL,
//! launch psql — for a profile piped in or an env named with `--env`.

mod cli;
mod commands;

fn main() -> std::process::ExitCode {
    dbtools::cli::main("dbconnect", commands::run)
}
