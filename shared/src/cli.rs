//! What every tool's `main` shares: the common flags (`--json`, `--config`, `--env`), and the
//! runner that maps a result to an exit code and reports errors as one `<tool>: …` stderr line
//! (plus a `dbtools.error/v1` object on stdout when it is a pipe, so the next tool knows).

use crate::contract::{ErrorMessage, Profile};
pub use crate::diag::{note, NoteAfter};
use crate::exit::{Error, ExitStatus, Result};
use crate::output::write_stdout;
use crate::{config, input};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
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
    /// Write a shell completion script (bash, zsh, fish, powershell) or the manual (man: this
    /// tool's page on stdout; man-dir DIR: a page per command into DIR), then exit. First
    /// argument only.
    #[arg(long, value_name = "KIND")]
    pub generate: Option<String>,
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
        // A malformed name is said before anything else is looked for (`Test`: did you mean
        // `test`?), config or not.
        if let Some(name) = &self.env {
            crate::names::check_env_name(name)?;
        }
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
        let dir = args.get(3).map(PathBuf::from);
        return match generate(C::command(), tool, kind, dir.as_deref()) {
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

/// Writes a shell completion script or the manual (roff) for `command`: `man` is the tool's
/// page on stdout, `man-dir DIR` writes it and one page per command (`dbenv-export.1`, which
/// the tool's page names under SEE ALSO) into DIR.
fn generate(mut command: clap::Command, tool: &str, kind: &str, dir: Option<&Path>) -> Result<()> {
    use clap_complete::Shell;
    let shell = match kind {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        "powershell" => Shell::PowerShell,
        "man" => return crate::output::write_stdout(&man_page(command)?),
        "man-dir" => {
            let dir = dir.ok_or_else(|| {
                Error::BadInput("--generate man-dir needs the directory to write into".into())
            })?;
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::BadInput(format!("cannot create {}: {e}", dir.display())))?;
            command.build();
            let mut pages = vec![(tool.to_string(), command.clone())];
            for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
                let name = format!("{tool}-{}", sub.get_name());
                pages.push((name.clone(), sub.clone().display_name(name)));
            }
            for (name, page) in pages {
                let path = dir.join(format!("{name}.1"));
                std::fs::write(&path, man_page(page)?)
                    .map_err(|e| Error::Failed(format!("cannot write {}: {e}", path.display())))?;
            }
            return Ok(());
        }
        other => {
            return Err(Error::BadInput(format!(
                "--generate {other:?}: use bash, zsh, fish, powershell, man or man-dir DIR"
            )))
        }
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, tool, &mut script);
    let mut script = String::from_utf8_lossy(&script).into_owned();
    if shell == Shell::Zsh {
        // zsh: the `ENV` values come from the helper, defined after the `#compdef` line.
        script = script.replace(":ENV:_default'", ":ENV:_dbtools_envs'");
        if let Some(end) = script.find('\n') {
            script.insert_str(end + 1, ZSH_ENVS);
        }
    }
    let script = script + &env_completion(shell, tool);
    crate::output::write_stdout(&script)
}

/// One man page, with the sections clap does not write: EXIT STATUS and ENVIRONMENT.
fn man_page(command: clap::Command) -> Result<String> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(|e| Error::Failed(format!("cannot render the man page: {e}")))?;
    let mut text = String::from_utf8_lossy(&page).into_owned();
    text.push_str(MAN_EXIT_AND_ENVIRONMENT);
    Ok(text)
}

const MAN_EXIT_AND_ENVIRONMENT: &str = r#".SH "EXIT STATUS"
.TP
0
ok
.TP
1
a valid negative answer (pending migrations or seeds with \-\-exit\-code, lint findings, a seed that is not idempotent)
.TP
2
usage or bad input (flags, JSON on stdin, config, unknown env, missing secret); nothing was done
.TP
3
refused by a guard (protection without its confirmation, a stamp of another env, a blocking lint finding)
.TP
4
cannot connect (refused, timeout, TLS, authentication, missing database, AWS unreachable)
.TP
5
the operation failed in the database, the server process or AWS (and was rolled back)
.TP
130
interrupted (Ctrl\-C): what was done stays, the message says where things stood
.SH ENVIRONMENT
.TP
DBTOOLS_CONFIG
the project config when no \-\-config is given (else dbtools.toml found upward from the current directory)
.TP
DBTOOLS_ENV
the env when no \-\-env is given and no profile is piped in (else dev)
.TP
DBTOOLS_STATE_DIR
where local instances, their secrets and the caches live (else the config's state_dir, .dbtools)
.TP
DBTOOLS_BIN_DIR
where a tool finds its sibling tools (else its own directory, then PATH)
.TP
DBTOOLS_PG_BIN
the PostgreSQL binaries the local provider and dbmigrate dump use
.TP
DATABASE_URL, PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGPASSFILE, PGSERVICE, PGSERVICEFILE, PGSSLMODE, PGSSLROOTCERT
read as libpq reads them by dbenv resolve \-\-from\-env; a profile whose secret is env:PGPASSWORD reads that variable
.TP
AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL
the AWS SDK's settings, read by rdsprov (the only tool that calls AWS)
"#;

/// The zsh helper that offers the envs of the dbtools.toml in reach.
const ZSH_ENVS: &str = r#"(( $+functions[_dbtools_envs] )) || _dbtools_envs() {
    local -a envs
    envs=(${(f)"$(dbenv list --names 2>/dev/null)"})
    _describe 'env' envs
}
"#;

/// Shell code appended to a completion script so that `--env` (and `dbenv resolve|export`)
/// offer the envs of the dbtools.toml in reach (`dbenv list --names`), not file names.
fn env_completion(shell: clap_complete::Shell, tool: &str) -> String {
    use clap_complete::Shell;
    let function = tool.replace('-', "__");
    match shell {
        Shell::Bash => format!(
            r#"
_{function}_with_envs() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    if [[ "$prev" == "--env" || "$prev" == "-e" ]] || {{ [[ "{tool}" == "dbenv" && $COMP_CWORD -eq 2 ]] && [[ "${{COMP_WORDS[1]}}" == "resolve" || "${{COMP_WORDS[1]}}" == "export" ]]; }}; then
        COMPREPLY=( $(compgen -W "$(dbenv list --names 2>/dev/null)" -- "$cur") )
        return 0
    fi
    _{function} "$@"
}}
complete -F _{function}_with_envs -o nosort -o bashdefault -o default {tool}
"#
        ),
        Shell::Fish => format!(
            r#"complete -c {tool} -s e -l env -x -a "(dbenv list --names 2>/dev/null)" -d 'env from dbtools.toml'
"#
        ),
        _ => String::new(),
    }
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
