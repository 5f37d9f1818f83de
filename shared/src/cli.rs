//! What every tool's `main` shares: the common flags (`--json`, `--config`, `--env`), and the
//! runner that maps a result to an exit code and reports errors as one `<tool>: …` stderr line
//! (plus a `dbtools.error/v1` object on stdout when it is a pipe, so the next tool knows).

use crate::contract::{ErrorMessage, Profile};
pub use crate::diag::{note, NoteAfter};
use crate::exit::{Error, ExitStatus, Result};
use crate::output::write_stdout;
use crate::{config, input};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// Flags every tool takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GlobalArgs {
    /// Print JSON even on a terminal.
    #[arg(long, global = true)]
    pub json: bool,
    /// Project config file [default: dbtools.toml found upward from the cwd, or $DBTOOLS_CONFIG].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `--env NAME`: resolve the profile here instead of reading it from stdin.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EnvArg {
    /// Environment to use (instead of a profile on stdin) [default: $DBTOOLS_ENV, then dev].
    #[arg(long, short = 'e', value_name = "ENV")]
    pub env: Option<String>,
}

impl EnvArg {
    /// The profile this invocation works on, by the one rule in [`input`]: `--env`, else a
    /// profile piped in, else `DBTOOLS_ENV`, else dev.
    pub fn profile(&self, global: &GlobalArgs) -> Result<Profile> {
        let piped = match &self.env {
            Some(_) => None,
            None => input::piped_profile()?,
        };
        match piped {
            Some(profile) => crate::resolve::admit_piped_profile(
                profile,
                config::Config::find(global.config.as_deref())?.as_ref(),
            ),
            None => crate::resolve::resolve_selected(
                &config::Config::load(global.config.as_deref())?,
                self.env.as_deref(),
            ),
        }
    }
}

/// `--confirm ENV` and `--break-glass REASON`: what destructive actions need on protected envs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfirmArgs {
    /// The env name, typed exactly: needed for destructive actions on confirm- and locked-level envs.
    #[arg(long, value_name = "ENV", env = "DBGUARD_CONFIRM")]
    pub confirm: Option<String>,
    /// Why a locked env must change: needed, with --confirm, for destructive actions there.
    #[arg(long, value_name = "REASON")]
    pub break_glass: Option<String>,
}

impl ConfirmArgs {
    pub fn confirmation(&self) -> crate::guard::Confirmation {
        crate::guard::Confirmation {
            confirm: self.confirm.clone(),
            break_glass: self.break_glass.clone(),
        }
    }
}

/// Parses flags, runs the tool, reports the outcome; the whole of a tool's `main`.
/// `<tool> --generate bash|zsh|fish|powershell|man` prints a completion script or the man page,
/// made from the same clap definition (what `make install` puts in place).
pub fn main<C: clap::Parser>(
    tool: &'static str,
    run: impl FnOnce(C) -> Result<ExitStatus>,
) -> ExitCode {
    crate::diag::set_tool(tool);
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--generate") {
        let kind = args.get(2).and_then(|k| k.to_str()).unwrap_or_default();
        return match generate(C::command(), tool, kind) {
            Ok(()) => ExitStatus::Success.into(),
            Err(error) => report(tool, &error).into(),
        };
    }
    let cli = match C::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let command = C::command();
            let verbs: Vec<&str> = command
                .get_subcommands()
                .map(|s| s.get_name())
                .filter(|name| *name != "help")
                .collect();
            return report(
                tool,
                &Error::BadInput(format!(
                    "a command is needed: {} (see `{tool} --help`)",
                    verbs.join(", ")
                )),
            )
            .into();
        }
        Err(e) if e.use_stderr() => {
            // clap's multi-line usage error becomes our one line, with where to look next.
            // Its first paragraph can span lines (the missing arguments are listed below it).
            let rendered = e.render().to_string();
            let paragraph: Vec<&str> = rendered
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect();
            let first = paragraph.join(" ");
            let message = first.strip_prefix("error: ").unwrap_or(&first);
            // clap's "did you mean" is a later paragraph: keep it on the line.
            let tips: String = rendered
                .lines()
                .map(str::trim)
                .filter(|line| line.starts_with("tip:"))
                .map(|tip| format!("; {tip}"))
                .collect();
            return report(
                tool,
                &Error::BadInput(format!("{message}{tips} (see `{tool} --help`)")),
            )
            .into();
        }
        Err(e) => {
            // --help and --version
            let _ = e.print();
            return ExitStatus::Success.into();
        }
    };
    match run(cli) {
        Ok(status) => status.into(),
        Err(error) => report(tool, &error).into(),
    }
}

/// Writes a shell completion script or the man page (roff) for `command` to stdout.
fn generate(mut command: clap::Command, tool: &str, kind: &str) -> Result<()> {
    use clap_complete::Shell;
    let shell = match kind {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        "powershell" => Shell::PowerShell,
        "man" => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(|e| Error::Failed(format!("cannot render the man page: {e}")))?;
            return crate::output::write_stdout(&String::from_utf8_lossy(&page));
        }
        other => {
            return Err(Error::BadInput(format!(
                "--generate {other:?}: use bash, zsh, fish, powershell or man"
            )))
        }
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, tool, &mut script);
    crate::output::write_stdout(&String::from_utf8_lossy(&script))
}

static STDOUT_IS_TEXT: AtomicBool = AtomicBool::new(false);

/// Declares that this command prints text for a shell or a file (`export --format env`, a URL,
/// psql's own output), not JSON: its errors then go to stderr only, so `eval "$(dbenv export …)"`
/// never evaluates an error object and a file never receives one.
pub fn stdout_is_text() {
    STDOUT_IS_TEXT.store(true, Ordering::Relaxed);
}

/// Reports an error on stderr (and on stdout as JSON when piped); returns its exit status.
pub fn report(tool: &str, error: &Error) -> ExitStatus {
    if !matches!(error, Error::Upstream { .. }) {
        let _ = writeln!(std::io::stderr().lock(), "{tool}: {}", error.message());
    }
    if !std::io::stdout().is_terminal() && !STDOUT_IS_TEXT.load(Ordering::Relaxed) {
        let message = match error {
            Error::Upstream { tool: origin, .. } => ErrorMessage::new(origin, error),
            _ => ErrorMessage::new(tool, error),
        };
        if let Ok(json) = serde_json::to_string(&message) {
            let _ = write_stdout(&(json + "\n"));
        }
    }
    error.status()
}
