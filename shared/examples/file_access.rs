//! Prints who may open each file named on the command line, as the system says: the mode on
//! Unix, the access list (SDDL) on Windows. The Windows smoke suite runs it under wine to read a
//! secret file's protection back (tests/tests/windows.rs).

use std::process::ExitCode;

#[allow(clippy::print_stdout, clippy::print_stderr)]
fn main() -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for path in std::env::args_os().skip(1) {
        match dbtools::state::describe_access(std::path::Path::new(&path)) {
            Ok(access) => println!("{access}"),
            Err(e) => {
                eprintln!("file_access: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
