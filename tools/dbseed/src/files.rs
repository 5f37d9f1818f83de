//! The seed set of one env: `common/` then `<env>/` under the seeds dir, each in file-name order
//! (number them: `010_channels.sql`). SQL files are parsed with PostgreSQL's own parser before
//! anything is sent (a file that does not parse is named with its line), and the tables they
//! write are read from the parse tree. CSV files load into the table their name gives
//! (`020_agents.csv` → `agents`, `app.agents.csv` → `app.agents`) or `seeds.toml` names:
//!
//! ```toml
//! [csv."dev/020_agents.csv"]
//! table = "agents"          # default: from the file name
//! key = ["handle"]          # conflict target; default: any unique constraint, DO NOTHING
//! update = true             # with key: ON CONFLICT (key) DO UPDATE the other columns
//! allow_locked = false      # may it run on a locked env?
//! ```
//!
//! A SQL file opts in to locked envs with a `-- dbseed:allow-locked` comment.

use dbtools::lint;
use dbtools::migration_files::{checksum, checksum_file};
use dbtools::names::quote_ident;
use dbtools::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MANIFEST: &str = "seeds.toml";
const ALLOW_LOCKED: &str = "dbseed:allow-locked";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    csv: BTreeMap<String, CsvOptions>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvOptions {
    table: Option<String>,
    #[serde(default)]
    key: Vec<String>,
    #[serde(default)]
    update: bool,
    #[serde(default)]
    allow_locked: bool,
}

/// How a CSV file is loaded.
#[derive(Debug, Clone)]
pub(crate) struct CsvLoad {
    /// The table, quoted for SQL (`"app"."agents"`).
    pub table: String,
    /// The header's columns, quoted.
    pub columns: Vec<String>,
    /// Conflict target, quoted; empty: any unique constraint.
    pub key: Vec<String>,
    pub update: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Body {
    Sql(String),
    Csv { path: PathBuf, load: CsvLoad },
}

#[derive(Debug, Clone)]
pub(crate) struct SeedFile {
    /// Relative to the seeds dir, with `/`: `common/010_channels.sql`.
    pub name: String,
    pub checksum: String,
    /// Tables the file writes, as SQL names.
    pub tables: Vec<String>,
    pub allow_locked: bool,
    pub body: Body,
}

/// Loads the seed files for `env` from `dir` (its `common/` and `<env>/`, either may be
/// missing). A missing `dir` is an error, as in dbmigrate: a typo must not read as "nothing to
/// seed". A file that would be a seed but for its extension's case (`.SQL`) is said, not
/// skipped in silence.
pub(crate) fn load(dir: &Path, env: &str) -> Result<Vec<SeedFile>> {
    if !dir.is_dir() {
        return Err(Error::BadInput(format!(
            "cannot read seeds dir {}: no such directory (create it with common/ and <env>/ inside, or pass --dir)",
            dir.display()
        )));
    }
    let root = dbtools::links::project_root(dir)?;
    dbtools::links::check_inside(&dir.join(MANIFEST), &root)?;
    let manifest = read_manifest(dir)?;
    let mut seeds = Vec::new();
    let mut known = Vec::new();
    for group in ["common", env] {
        let group_dir = dir.join(group);
        let entries = match std::fs::read_dir(&group_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::BadInput(format!(
                    "cannot read {}: {e}",
                    group_dir.display()
                )))
            }
        };
        let mut names: Vec<String> = Vec::new();
        for name in entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
        {
            if name.ends_with(".sql") || name.ends_with(".csv") {
                names.push(name);
            } else if [".sql", ".csv"]
                .iter()
                .any(|ext| name.to_ascii_lowercase().ends_with(ext))
            {
                dbtools::cli::note(
                    "dbseed",
                    format!(
                        "skipped {group}/{name}: seed files end in .sql or .csv, in lower case (rename it to run it)"
                    ),
                );
            }
        }
        names.sort();
        for file_name in names {
            let name = format!("{group}/{file_name}");
            let path = group_dir.join(&file_name);
            dbtools::links::check_inside(&path, &root)?;
            if !path.is_file() {
                dbtools::cli::note(
                    "dbseed",
                    format!("skipped {name}: not a file (a seed is a .sql or .csv file)"),
                );
                continue;
            }
            known.push(name.clone());
            seeds.push(if file_name.ends_with(".sql") {
                sql_seed(name, &path)?
            } else {
                let options = manifest.csv.get(&name).cloned().unwrap_or_default();
                // Kept by its resolved path and opened without following a link later: the
                // rows stream in after the guard, long after this check.
                let resolved = std::fs::canonicalize(&path)
                    .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", path.display())))?;
                csv_seed(name, &resolved, &options)?
            });
        }
    }
    if let Some(stray) = manifest
        .csv
        .keys()
        .find(|k| !known.contains(k) && !other_env_file(k, env))
    {
        return Err(Error::BadInput(format!(
            "{}: [csv.\"{stray}\"] names no CSV file in {}",
            dir.join(MANIFEST).display(),
            dir.display()
        )));
    }
    Ok(seeds)
}

/// A manifest entry for another env's file is fine; one for a missing common file is a typo.
fn other_env_file(name: &str, env: &str) -> bool {
    !name.starts_with("common/") && !name.starts_with(&format!("{env}/"))
}

fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    match std::fs::read_to_string(&path) {
        Ok(text) => dbtools::config::parse_toml(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
        Err(e) => Err(Error::BadInput(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn read_text(name: &str, path: &Path) -> Result<String> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        Error::BadInput(format!("{name}:{line}: not UTF-8: save the file as UTF-8"))
    })?;
    Ok(text
        .strip_prefix('\u{feff}')
        .map(str::to_string)
        .unwrap_or(text))
}

fn sql_seed(name: String, path: &Path) -> Result<SeedFile> {
    let text = read_text(&name, path)?;
    let parsed = dbtools::sql::parse(&text, 1)
        .map_err(|(line, message)| Error::BadInput(format!("{name}:{line}: {message}")))?;
    let mut tables = parsed.dml_tables();
    tables.sort();
    tables.dedup();
    let tables = tables.iter().map(|t| quote_qualified(t)).collect();
    Ok(SeedFile {
        checksum: checksum(&text),
        allow_locked: text
            .lines()
            .any(|l| l.trim_start().starts_with("--") && l.contains(ALLOW_LOCKED)),
        tables,
        name,
        body: Body::Sql(text),
    })
}

/// `a.b` → `"a"."b"`.
fn quote_qualified(name: &str) -> String {
    name.split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

fn csv_seed(name: String, path: &Path, options: &CsvOptions) -> Result<SeedFile> {
    // A CSV may be large: only its header is read here; the rows stream into COPY later, and
    // the server checks their encoding (naming the line).
    let unreadable =
        |e: std::io::Error| Error::BadInput(format!("cannot read {}: {e}", path.display()));
    let mut header = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(std::fs::File::open(path).map_err(unreadable)?),
        &mut header,
    )
    .map_err(|_| Error::BadInput(format!("{name}:1: the header is not UTF-8")))?;
    let header = header
        .trim_start_matches('\u{feff}')
        .trim_end_matches(['\n', '\r']);
    let columns =
        split_csv_header(header).map_err(|what| Error::BadInput(format!("{name}:1: {what}")))?;
    if columns.is_empty() {
        return Err(Error::BadInput(format!(
            "{name}:1: the first line must name the columns"
        )));
    }
    let table = match &options.table {
        Some(table) => table.clone(),
        None => {
            let stem = Path::new(&name)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            stem.trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start_matches(['_', '-'])
                .to_string()
        }
    };
    if table.is_empty() {
        return Err(Error::BadInput(format!(
            "{name}: no table in the file name: name it <table>.csv or set table in seeds.toml"
        )));
    }
    if options.update && options.key.is_empty() {
        return Err(Error::BadInput(format!(
            "{name}: update = true needs key = [columns] in seeds.toml"
        )));
    }
    let table = quote_qualified(&table);
    Ok(SeedFile {
        checksum: checksum_file(path).map_err(unreadable)?,
        tables: vec![table.clone()],
        allow_locked: options.allow_locked,
        name,
        body: Body::Csv {
            path: path.to_path_buf(),
            load: CsvLoad {
                table,
                columns: columns.iter().map(|c| quote_ident(c)).collect(),
                key: options.key.iter().map(|c| quote_ident(c)).collect(),
                update: options.update,
            },
        },
    })
}

/// The column names of a CSV header (quoted fields allowed).
fn split_csv_header(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote in the header".into());
    }
    fields.push(field);
    let fields: Vec<String> = fields.into_iter().map(|f| f.trim().to_string()).collect();
    if fields.iter().any(String::is_empty) {
        return Err("a header column is empty".into());
    }
    Ok(fields)
}

/// Lint findings of the SQL seed files (CSV files only insert), linted together as one run:
/// a function one seed defines, a later one may call.
pub(crate) fn lint(seeds: &[SeedFile]) -> Result<Vec<dbtools::contract::LintFinding>> {
    let mut linter = lint::Linter::new();
    for seed in seeds {
        if let Body::Sql(text) = &seed.body {
            linter.add_sql(&seed.name, text)?;
        }
    }
    Ok(linter.findings())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_headers_and_table_names() {
        assert_eq!(
            split_csv_header(r#"handle, "display ""name""",x"#).unwrap(),
            ["handle", "display \"name\"", "x"]
        );
        assert!(split_csv_header("a,,b").is_err());
        assert_eq!(quote_qualified("app.agents"), "\"app\".\"agents\"");
    }
}
