//! Exit codes shared by every dbtools binary, and the error type that maps onto them.
//!
//! Scripts branch on these numbers, so they are part of the public contract (README lists them):
//! 0 ok · 1 a valid negative answer · 2 usage or bad input · 3 refused by a guard ·
//! 4 cannot connect / AWS unreachable · 5 the operation failed in the database or AWS ·
//! 130 interrupted (Ctrl-C) during a wait, after saying where it stood.

use std::fmt;

/// The process exit status of a dbtools tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    Success = 0,
    /// A valid "no" (pending migrations with `--exit-code`, lint findings, a failed check).
    Negative = 1,
    /// Usage error or bad input (flags, JSON, config, files); nothing was done.
    BadInput = 2,
    /// A guard refused the action.
    Refused = 3,
    /// The database or AWS could not be reached (network, TLS, authentication).
    Unreachable = 4,
    /// The operation failed inside the database or AWS (and was rolled back).
    Failed = 5,
    /// Ctrl-C during a wait: what was done stays, a rerun continues (128 + SIGINT, as shells say).
    Interrupted = 130,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_code(code: i64) -> Option<ExitStatus> {
        Some(match code {
            0 => ExitStatus::Success,
            1 => ExitStatus::Negative,
            2 => ExitStatus::BadInput,
            3 => ExitStatus::Refused,
            4 => ExitStatus::Unreachable,
            5 => ExitStatus::Failed,
            130 => ExitStatus::Interrupted,
            _ => return None,
        })
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

/// Every failure a tool reports: the class decides the exit code, the message says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad flags, bad JSON on stdin, bad config, unknown env: exit 2.
    BadInput(String),
    /// A guard said no: exit 3.
    Refused(String),
    /// Could not reach the database or AWS: exit 4.
    Unreachable(String),
    /// The server refused the password (SQLSTATE 28P01): exit 4, like any connect that fails,
    /// but a kind of its own, so a rotated secret is read again by type, not by message text.
    AuthFailed(String),
    /// The database, the server process or AWS failed the operation: exit 5.
    Failed(String),
    /// A statement waited longer than its `lock_timeout` for a lock another session held, as
    /// many times as it was allowed to try: exit 5, with who held the lock when that was seen.
    LockTimeout(String),
    /// Ctrl-C while waiting: exit 130, with where things stood.
    Interrupted(String),
    /// An earlier tool in the pipeline failed and sent its error object down the pipe. It already
    /// spoke on stderr, so this tool passes the object on and exits with the same status, silently.
    Upstream {
        tool: String,
        status: ExitStatus,
        kind: ErrorKind,
        message: String,
    },
}

/// What kind of error a tool reported, as its error object names it (`"error"`), so a script
/// or the next tool can tell a refused password from a host that does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    BadInput,
    Refused,
    Unreachable,
    AuthFailed,
    Failed,
    LockTimeout,
    Interrupted,
}

impl Error {
    pub fn status(&self) -> ExitStatus {
        match self {
            Error::BadInput(_) => ExitStatus::BadInput,
            Error::Refused(_) => ExitStatus::Refused,
            Error::Unreachable(_) | Error::AuthFailed(_) => ExitStatus::Unreachable,
            Error::Failed(_) | Error::LockTimeout(_) => ExitStatus::Failed,
            Error::Interrupted(_) => ExitStatus::Interrupted,
            Error::Upstream { status, .. } => *status,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadInput(_) => ErrorKind::BadInput,
            Error::Refused(_) => ErrorKind::Refused,
            Error::Unreachable(_) => ErrorKind::Unreachable,
            Error::AuthFailed(_) => ErrorKind::AuthFailed,
            Error::Failed(_) => ErrorKind::Failed,
            Error::LockTimeout(_) => ErrorKind::LockTimeout,
            Error::Interrupted(_) => ErrorKind::Interrupted,
            Error::Upstream { kind, .. } => *kind,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Error::BadInput(m)
            | Error::Refused(m)
            | Error::Unreachable(m)
            | Error::AuthFailed(m)
            | Error::Failed(m)
            | Error::LockTimeout(m)
            | Error::Interrupted(m) => m,
            Error::Upstream { message, .. } => message,
        }
    }

    /// The same class of error with another message (an upstream error, already reported by
    /// its tool, becomes this tool's failure).
    pub fn with_message(&self, message: String) -> Error {
        match self {
            Error::BadInput(_) => Error::BadInput(message),
            Error::Refused(_) => Error::Refused(message),
            Error::Unreachable(_) => Error::Unreachable(message),
            Error::AuthFailed(_) => Error::AuthFailed(message),
            Error::Failed(_) | Error::Upstream { .. } => Error::Failed(message),
            Error::LockTimeout(_) => Error::LockTimeout(message),
            Error::Interrupted(_) => Error::Interrupted(message),
        }
    }

    /// Prefix the message with what was being done, keeping the class.
    pub fn context(self, what: impl fmt::Display) -> Error {
        let wrap = |m: String| format!("{what}: {m}");
        match self {
            Error::BadInput(m) => Error::BadInput(wrap(m)),
            Error::Refused(m) => Error::Refused(wrap(m)),
            Error::Unreachable(m) => Error::Unreachable(wrap(m)),
            Error::AuthFailed(m) => Error::AuthFailed(wrap(m)),
            Error::Failed(m) => Error::Failed(wrap(m)),
            Error::LockTimeout(m) => Error::LockTimeout(wrap(m)),
            Error::Interrupted(m) => Error::Interrupted(wrap(m)),
            upstream @ Error::Upstream { .. } => upstream,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_message_keeps_the_class() {
        let auth = Error::AuthFailed("old".into()).with_message("new".into());
        assert_eq!(
            (auth.kind(), auth.message()),
            (ErrorKind::AuthFailed, "new")
        );
        let refused = Error::Refused("old".into()).with_message("new".into());
        assert_eq!(refused.status(), ExitStatus::Refused);
    }
}
