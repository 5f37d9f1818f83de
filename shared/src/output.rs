//! Output: JSON when stdout is a pipe (or `--json`), a readable table on a terminal. Secrets are
//! redacted on a terminal by the caller, who knows which fields hold them.

use crate::contract::Message;
use crate::exit::{Error, Result};
use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub terminal: bool,
}

impl Output {
    /// JSON when forced or when stdout is not a terminal.
    pub fn detect(force_json: bool) -> Output {
        let terminal = std::io::stdout().is_terminal();
        Output {
            json: force_json || !terminal,
            terminal,
        }
    }

    /// Whether a secret the user asked for by name (`dbenv export`, `rdsprov secret get`) is
    /// printed whole: into a pipe or file, where the asker's next step reads it; on a terminal
    /// (where anyone looking over a shoulder or at a screen share sees it) only with `--reveal`.
    pub fn shows_secrets(&self, reveal: bool) -> bool {
        reveal || !self.terminal
    }

    /// Writes a message as one JSON line (its kind first, from its type), or the human text
    /// `human` renders.
    pub fn emit<T: Message>(&self, value: &T, human: impl FnOnce() -> String) -> Result<()> {
        let text = if self.json {
            serde_json::to_string(value)
                .map_err(|e| Error::Failed(format!("cannot encode output: {e}")))?
                + "\n"
        } else {
            human()
        };
        write_stdout(&text)
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a message.
pub fn write_stdout(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::Failed(format!("cannot write stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// Renders aligned `key  value` lines.
pub fn key_values(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// Renders a table with a header row.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut text = line(header.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}
