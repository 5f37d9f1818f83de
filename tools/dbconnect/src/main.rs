//! `dbconnect`: prove a connection works (the witness), wait for a database, print its URL,
//! launch psql, diagnose a failing connection (`doctor`) — for a profile piped in or an env
//! named with `--env`.

mod cli;
mod commands;
mod doctor;

fn main() -> std::process::ExitCode {
    dbtools::cli::main("dbconnect", commands::run)
}
