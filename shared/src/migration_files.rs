//! Migration files, in dbmate's format: `<version>_<name>.sql` holding one or more sections,
//! each `-- migrate:up [transaction:false] [lock_timeout:5s] [statement_timeout:1h]` followed
//! (optionally) by `-- migrate:down […]`. The timeouts override the env's for that block; an
//! option we do not know is an error (a misspelt `lock_timout:` must not silently do nothing).
//!
//! Versions are the file name's leading digits, ordered numerically. The checksum hashes the
//! text with a UTF-8 byte-order mark dropped and CRLF line endings read as LF, so a Windows
//! checkout of an applied migration is the same migration; any other edit changes it. What we
//! send is the text as written, minus the BOM (PostgreSQL rejects it).

use crate::exit::{Error, Result};
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::path::{Path, PathBuf};

/// One up or down block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub sql: String,
    /// 1-based line in the file of the block's first SQL line.
    pub first_line: usize,
    pub transaction: bool,
    /// `lock_timeout:` and `statement_timeout:` on the directive line.
    pub timeouts: Timeouts,
}

/// Timeouts a directive sets for its block (PostgreSQL's settings of the same names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub lock: Option<std::time::Duration>,
    pub statement: Option<std::time::Duration>,
}

impl Timeouts {
    pub fn is_empty(&self) -> bool {
        self.lock.is_none() && self.statement.is_none()
    }

    /// These, where set, over `defaults`.
    pub fn over(self, defaults: Timeouts) -> Timeouts {
        Timeouts {
            lock: self.lock.or(defaults.lock),
            statement: self.statement.or(defaults.statement),
        }
    }
}

impl Block {
    /// True when the block holds nothing but blanks and `--` comments.
    pub fn is_empty(&self) -> bool {
        self.sql.lines().all(|line| {
            let line = line.trim();
            line.is_empty() || line.starts_with("--")
        })
    }
}

/// An up block and its down block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub up: Block,
    pub down: Block,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: String,
    pub name: String,
    pub path: PathBuf,
    pub checksum: String,
    pub sections: Vec<Section>,
    /// The file's text as read (without a byte-order mark): what the lint reads for opt-in
    /// comments, so that what is linted is what runs, never the file read again.
    pub text: String,
}

impl Migration {
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// True when every section runs in a transaction.
    pub fn transactional(&self) -> bool {
        self.sections.iter().all(|s| s.up.transaction)
    }
}

/// Orders version strings as numbers (`9` before `10`), whatever their length.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Hashes migration text the way both operating systems agree on.
pub fn checksum(text: &str) -> String {
    let normalized = text
        .strip_prefix('\u{feff}')
        .unwrap_or(text)
        .replace("\r\n", "\n");
    let digest = Sha256::digest(normalized.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// [`checksum`] of a file too large to hold as text (a seed CSV), read in chunks: the same
/// normalisation (a leading BOM dropped, CRLF read as LF), so both give the same digest.
pub fn checksum_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut first = true;
    let mut pending_cr = false;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        let mut chunk = &buffer[..read];
        if first {
            first = false;
            if let Some(rest) = chunk.strip_prefix(b"\xEF\xBB\xBF") {
                chunk = rest;
            }
        }
        if pending_cr && chunk.first() != Some(&b'\n') {
            hasher.update(b"\r");
        }
        pending_cr = false;
        let mut start = 0;
        for (i, byte) in chunk.iter().enumerate() {
            if *byte == b'\r' {
                if i + 1 == chunk.len() {
                    hasher.update(&chunk[start..i]);
                    pending_cr = true;
                    start = chunk.len();
                } else if chunk[i + 1] == b'\n' {
                    hasher.update(&chunk[start..i]);
                    start = i + 1;
                }
            }
        }
        hasher.update(&chunk[start..]);
    }
    if pending_cr {
        hasher.update(b"\r");
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Reads every `*.sql` file of the directories, ordered by version; other files are ignored.
pub fn load(dirs: &[PathBuf]) -> Result<Vec<Migration>> {
    let mut migrations: Vec<Migration> = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            Error::BadInput(format!(
                "cannot read migrations dir {}: {e} (pass --dir DIR)",
                dir.display()
            ))
        })?;
        let root = crate::links::project_root(dir)?;
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        paths.sort();
        for path in paths {
            crate::links::check_inside(&path, &root)?;
            if !path.is_file() {
                crate::diag::note(
                    crate::diag::tool(),
                    format!(
                        "skipped {}: not a file (a migration is a .sql file)",
                        path.display()
                    ),
                );
                continue;
            }
            let bytes = std::fs::read(&path)
                .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", path.display())))?;
            migrations.push(parse(&path, &bytes)?);
        }
    }
    migrations.sort_by(|a, b| compare_versions(&a.version, &b.version));
    for pair in migrations.windows(2) {
        if compare_versions(&pair[0].version, &pair[1].version) == Ordering::Equal {
            return Err(Error::BadInput(format!(
                "duplicate version {}: {} and {} (give one of them a new version)",
                pair[1].version,
                pair[0].path.display(),
                pair[1].path.display()
            )));
        }
    }
    Ok(migrations)
}

/// Splits `20240101120000_create_users.sql` into version and name.
fn version_and_name(path: &Path) -> Result<(String, String)> {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = file.strip_suffix(".sql").unwrap_or(&file);
    let digits: String = stem.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return Err(Error::BadInput(format!(
            "{}: the file name must start with a numeric version, like 20240101120000_name.sql (`dbmigrate new NAME` makes one)",
            path.display()
        )));
    }
    let name = stem[digits.len()..].trim_start_matches('_').to_string();
    Ok((digits, name))
}

/// Decodes a migration file: UTF-8 (BOM allowed); UTF-16 and invalid UTF-8 are named errors.
fn decode(path: &Path, bytes: &[u8]) -> Result<String> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(Error::BadInput(format!(
            "{} is saved as UTF-16: save it as UTF-8 (PostgreSQL and dbmate read UTF-8)",
            path.display()
        )));
    }
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
        Error::BadInput(format!(
            "{} is not valid UTF-8 (line {line}, byte {offset}): save it as UTF-8",
            path.display()
        ))
    })
}

/// A `-- migrate:up` / `-- migrate:down` directive line, with its options' text.
fn directive(line: &str) -> Option<(&'static str, &str)> {
    let rest = line.strip_prefix("--")?.trim_start();
    let rest = rest.strip_prefix("migrate:")?;
    let (which, options) = if let Some(options) = rest.strip_prefix("up") {
        ("up", options)
    } else if let Some(options) = rest.strip_prefix("down") {
        ("down", options)
    } else {
        return None;
    };
    if !(options.is_empty() || options.starts_with(char::is_whitespace)) {
        return None;
    }
    Some((which, options))
}

/// A directive's options: `transaction:false` (dbmate's), `lock_timeout:` and
/// `statement_timeout:` (ours); anything else is refused.
fn options(text: &str) -> std::result::Result<(bool, Timeouts), String> {
    let mut transaction = true;
    let mut timeouts = Timeouts::default();
    for option in text.split_whitespace() {
        let (name, value) = option.split_once(':').unwrap_or((option, ""));
        match name {
            "transaction" if value == "false" || value == "true" => transaction = value == "true",
            "lock_timeout" | "statement_timeout" => {
                let duration = crate::time::parse_setting(value)
                    .map_err(|e| format!("{name}: {}", e.message()))?;
                if name == "lock_timeout" {
                    timeouts.lock = Some(duration);
                } else {
                    timeouts.statement = Some(duration);
                }
            }
            _ => {
                return Err(format!(
                    "unknown option {option:?} on the directive: use transaction:false, lock_timeout:DURATION or statement_timeout:DURATION"
                ))
            }
        }
    }
    Ok((transaction, timeouts))
}

/// Parses one file.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Migration> {
    let (version, name) = version_and_name(path)?;
    let text = decode(path, bytes)?;
    let checksum = checksum(&text);
    let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let at =
        |line: usize, what: String| Error::BadInput(format!("{}:{line}: {what}", path.display()));

    if !body
        .lines()
        .any(|line| directive(line.trim_end_matches('\r')).is_some_and(|(kind, _)| kind == "up"))
    {
        return Err(Error::BadInput(format!(
            "{}: no `-- migrate:up` line: every migration starts with one",
            path.display()
        )));
    }
    // Blocks in file order: (kind, (transaction, timeouts), first SQL line, text).
    let mut blocks: Vec<(&str, (bool, Timeouts), usize, String)> = Vec::new();
    for (index, line) in body.split_inclusive('\n').enumerate() {
        let number = index + 1;
        let bare = line.trim_end_matches(['\n', '\r']);
        if let Some((kind, text)) = directive(bare) {
            let parsed = options(text).map_err(|what| at(number, what))?;
            blocks.push((kind, parsed, number + 1, String::new()));
            continue;
        }
        match blocks.last_mut() {
            Some(block) => block.3.push_str(line),
            None => {
                let trimmed = bare.trim();
                if !trimmed.is_empty() && !trimmed.starts_with("--") {
                    return Err(at(number, "a statement before the first `-- migrate:up` (dbmate runs nothing outside the up and down blocks)".into()));
                }
            }
        }
    }
    let mut sections: Vec<Section> = Vec::new();
    let mut iter = blocks.into_iter().peekable();
    while let Some((kind, (transaction, timeouts), first_line, sql)) = iter.next() {
        if kind == "down" {
            return Err(at(
                first_line - 1,
                "`-- migrate:down` without a `-- migrate:up` before it".into(),
            ));
        }
        let up = Block {
            sql,
            first_line,
            transaction,
            timeouts,
        };
        let down = match iter.peek() {
            Some((next_kind, ..)) if *next_kind == "down" => {
                let (_, (transaction, timeouts), first_line, sql) = iter.next().unwrap();
                Block {
                    sql,
                    first_line,
                    transaction,
                    timeouts,
                }
            }
            _ => Block {
                sql: String::new(),
                first_line: up.first_line,
                transaction: up.transaction,
                timeouts: Timeouts::default(),
            },
        };
        sections.push(Section { up, down });
    }
    Ok(Migration {
        version,
        name,
        path: path.to_path_buf(),
        checksum,
        sections,
        text: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_checksums_equal_text_checksums_across_chunks_and_line_endings() {
        let dir = std::env::temp_dir().join(format!("dbtools-checksum-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let unix: String = (0..300_000).map(|i| format!("{i},row {i}\n")).collect();
        let windows = format!("\u{feff}{}", unix.replace('\n', "\r\n"));
        for (name, text) in [
            ("unix", &unix),
            ("windows", &windows),
            ("lone", &"a\rb\r".to_string()),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            assert_eq!(checksum_file(&path).unwrap(), checksum(text), "{name}");
        }
        assert_eq!(
            checksum_file(&dir.join("unix")).unwrap(),
            checksum_file(&dir.join("windows")).unwrap()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn parse_text(name: &str, text: &str) -> Result<Migration> {
        parse(Path::new(name), text.as_bytes())
    }

    #[test]
    fn parses_sections_options_and_lines() {
        let m = parse_text(
            "20240101000000_users.sql",
            "-- a comment\n\n-- migrate:up\ncreate table u (id int);\n-- migrate:down\ndrop table u;\n-- migrate:up transaction:false\ncreate index concurrently i on u (id);\n-- migrate:down transaction:false\ndrop index concurrently i;\n",
        )
        .unwrap();
        assert_eq!(
            (m.version.as_str(), m.name.as_str()),
            ("20240101000000", "users")
        );
        assert_eq!(m.sections.len(), 2);
        assert_eq!(m.sections[0].up.sql, "create table u (id int);\n");
        assert_eq!(m.sections[0].up.first_line, 4);
        assert!(m.sections[0].up.transaction);
        assert!(!m.sections[1].up.transaction);
        assert_eq!(m.sections[1].down.first_line, 10);
        assert!(!m.transactional());
    }

    #[test]
    fn crlf_and_bom_do_not_change_the_checksum_but_other_edits_do() {
        let unix = "-- migrate:up\ninsert into t values ('a  b');\n-- migrate:down\n";
        let windows = format!("\u{feff}{}", unix.replace('\n', "\r\n"));
        assert_eq!(checksum(unix), checksum(&windows));
        assert_ne!(checksum(unix), checksum(&unix.replace("'a  b'", "'a b'")));
        assert_ne!(
            checksum(unix),
            checksum(&unix.replace("\n-- migrate:down", "\n\n-- migrate:down"))
        );
        let parsed = parse_text("1_x.sql", &windows).unwrap();
        assert!(!parsed.sections[0].up.sql.starts_with('\u{feff}'));
    }

    #[test]
    fn bad_files_are_named() {
        let cases = [
            ("1_x.sql", "create table t ();\n", "no `-- migrate:up`"),
            (
                "1_x.sql",
                "create table t ();\n-- migrate:up\n",
                "1_x.sql:1: a statement before",
            ),
            (
                "1_x.sql",
                "-- migrate:down\n-- migrate:up\n",
                "without a `-- migrate:up`",
            ),
            (
                "abc_x.sql",
                "-- migrate:up\n",
                "must start with a numeric version",
            ),
        ];
        for (name, text, needle) in cases {
            let err = parse_text(name, text).unwrap_err().to_string();
            assert!(err.contains(needle), "{name}: {err}");
        }
        let err = parse(Path::new("1_x.sql"), &[0xFF, 0xFE, b'-', 0])
            .unwrap_err()
            .to_string();
        assert!(err.contains("UTF-16"), "{err}");
        let err = parse(Path::new("1_x.sql"), b"-- migrate:up\nselect '\xC3\x28';\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid UTF-8 (line 2"), "{err}");
    }

    #[test]
    fn versions_order_numerically() {
        assert_eq!(compare_versions("9", "10"), Ordering::Less);
        assert_eq!(compare_versions("010", "10"), Ordering::Equal);
        assert_eq!(
            compare_versions("20240101000000", "20231231235959"),
            Ordering::Greater
        );
    }

    #[test]
    fn directives_need_a_word_boundary() {
        assert_eq!(directive("-- migrate:up"), Some(("up", "")));
        assert_eq!(
            directive("--migrate:down transaction:false"),
            Some(("down", " transaction:false"))
        );
        assert_eq!(directive("-- migrate:upper"), None);
        assert_eq!(
            directive("  -- migrate:up"),
            None,
            "dbmate anchors the directive at the line start"
        );
    }

    #[test]
    fn directive_options_set_timeouts_and_refuse_what_they_do_not_know() {
        let (transaction, timeouts) = options(" transaction:false lock_timeout:10s").unwrap();
        assert!(!transaction);
        assert_eq!(timeouts.lock, Some(std::time::Duration::from_secs(10)));
        assert_eq!(timeouts.statement, None);
        let (_, timeouts) = options("statement_timeout:0").unwrap();
        assert_eq!(timeouts.statement, Some(std::time::Duration::ZERO));
        assert!(options("lock_timout:10s")
            .unwrap_err()
            .contains("unknown option"));
        assert!(
            options("lock_timeout:10").is_ok(),
            "milliseconds, like PostgreSQL"
        );
        assert!(options("lock_timeout:ten")
            .unwrap_err()
            .contains("lock_timeout"));
        let error = parse(
            Path::new("1_a.sql"),
            b"-- migrate:up lock_timeout:5x\nselect 1;\n",
        )
        .unwrap_err();
        assert!(
            error.message().starts_with("1_a.sql:1: lock_timeout"),
            "{}",
            error.message()
        );
    }
}
