//! The floor for `scripts/bench/lint.sh`: the same file through PostgreSQL's parser (pg_query)
//! and nothing of ours — one thread, one parse, no judging — printing the statement count.
//! `dbguard lint` on the same file does this work and the judging on top.

// A benchmark's helper, not a tool: it has no output module to go through.
#![allow(clippy::print_stdout, clippy::print_stderr)]

fn main() -> std::process::ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: parse_floor FILE.sql");
        return std::process::ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("parse_floor: cannot read {path}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match pg_query::parse(&text, 0) {
        Ok(tree) => {
            println!("{} statements", tree.protobuf.stmts.len());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("parse_floor: {path}: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
