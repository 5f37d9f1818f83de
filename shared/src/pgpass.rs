//! libpq's password file (`~/.pgpass`, or `PGPASSFILE`), read the way libpq reads it: lines
//! `host:port:database:user:password`, each of the first four a literal or `*`, `\` escaping
//! `:` and `\`, `#` starting a comment line, the first matching line winning. On Unix a file
//! that group or others may read is ignored, as libpq ignores it (with a warning): the password
//! would not be private. Also the line `dbenv export` writes.

use crate::contract::Conn;
use crate::envvars;
use crate::exit::{Error, Result};
use std::path::{Path, PathBuf};

/// The password file libpq would read: `PGPASSFILE`, else `~/.pgpass` (on Windows
/// `%APPDATA%\postgresql\pgpass.conf`); None when neither names a file that exists.
pub(crate) fn default_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(envvars::PGPASSFILE).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = libpq_user_file(".pgpass", "pgpass.conf")?;
    path.is_file().then_some(path)
}

/// Where libpq and psql look for a per-user file: `~/NAME` on Unix, `%APPDATA%\postgresql\NAME`
/// on Windows (each with its own name there: `.pgpass` is `pgpass.conf`, `.psqlrc` is
/// `psqlrc.conf`, `.pg_service.conf` keeps its name). None when HOME / APPDATA is unset.
pub fn libpq_user_file(unix: &str, windows: &str) -> Option<PathBuf> {
    if cfg!(windows) {
        user_file_on_windows(std::env::var_os("APPDATA"), windows)
    } else {
        Some(PathBuf::from(std::env::var_os("HOME")?).join(unix))
    }
}

fn user_file_on_windows(appdata: Option<std::ffi::OsString>, name: &str) -> Option<PathBuf> {
    Some(PathBuf::from(appdata?).join("postgresql").join(name))
}

/// The password for `conn` in the file at `path`: the first line matching its host, port,
/// database and user. A missing file, or one group or others may read, is an error saying so.
pub fn lookup(path: &Path, conn: &Conn) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::BadInput(format!(
            "password file {}: cannot read it: {e}",
            path.display()
        ))
    })?;
    if let Some(mode) = loose_mode(path) {
        return Err(Error::BadInput(format!(
            "password file {} has mode {mode:o}: libpq ignores a password file group or others \
             may read, and so does dbtools; run chmod 600 {}",
            path.display(),
            path.display()
        )));
    }
    let port = conn.port.to_string();
    let wanted = [
        conn.host.as_str(),
        port.as_str(),
        conn.dbname.as_str(),
        conn.user.as_str(),
    ];
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(fields)
        .find(|fields| {
            fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, value)| field == "*" || field == value)
        })
        .map(|mut fields| fields.swap_remove(4))
        .ok_or_else(|| {
            Error::BadInput(format!(
                "password file {} has no line for {}:{}:{}:{}",
                path.display(),
                conn.host,
                conn.port,
                conn.dbname,
                conn.user
            ))
        })
}

/// A line's five fields, unescaped; None for a line that has fewer (libpq skips those).
fn fields(line: &str) -> Option<Vec<String>> {
    let line = line.trim_end_matches('\r');
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut()?.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    (fields.len() == 5).then_some(fields)
}

#[cfg(unix)]
fn loose_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn loose_mode(_path: &Path) -> Option<u32> {
    None
}

/// Escapes a field (`:` and `\`).
pub fn field(value: &str) -> String {
    value.replace('\\', r"\\").replace(':', r"\:")
}

/// The line for `conn` with `password` (already escaped, or a placeholder).
pub fn line(conn: &Conn, password: &str) -> String {
    format!(
        "{}:{}:{}:{}:{}\n",
        field(&conn.host),
        conn.port,
        field(&conn.dbname),
        field(&conn.user),
        password
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::SslMode;

    #[test]
    fn libpq_s_windows_files_live_under_appdata_postgresql() {
        let appdata = Some(std::ffi::OsString::from("C:/Users/me/AppData/Roaming"));
        assert_eq!(
            user_file_on_windows(appdata.clone(), "pgpass.conf"),
            Some(PathBuf::from(
                "C:/Users/me/AppData/Roaming/postgresql/pgpass.conf"
            ))
        );
        assert_eq!(
            user_file_on_windows(appdata, ".pg_service.conf"),
            Some(PathBuf::from(
                "C:/Users/me/AppData/Roaming/postgresql/.pg_service.conf"
            ))
        );
        assert_eq!(user_file_on_windows(None, "pgpass.conf"), None);
    }

    fn conn(host: &str, dbname: &str, user: &str) -> Conn {
        Conn {
            host: host.into(),
            port: 5432,
            dbname: dbname.into(),
            user: user.into(),
            password: None,
            sslmode: SslMode::Disable,
            sslrootcert: None,
        }
    }

    fn write(name: &str, text: &str, mode: u32) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("dbtools-pgpass-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        crate::state::set_mode(&path, mode).unwrap();
        path
    }

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let path = write(
            "match",
            "# a comment:*:*:*:no\nother:5432:*:*:wrong\nh\\:1:5432:d:u:p\\:w\\\\1\n*:*:app:*:second\n*:*:*:*:any\n",
            0o600,
        );
        assert_eq!(lookup(&path, &conn("h:1", "d", "u")).unwrap(), "p:w\\1");
        assert_eq!(lookup(&path, &conn("x", "app", "u")).unwrap(), "second");
        assert_eq!(lookup(&path, &conn("x", "db", "u")).unwrap(), "any");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn no_line_and_a_readable_file_are_errors() {
        let path = write("none", "other:5432:*:*:pw\n", 0o600);
        let error = lookup(&path, &conn("h", "d", "u")).unwrap_err();
        assert!(
            error.to_string().contains("has no line for h:5432:d:u"),
            "{error}"
        );
        std::fs::remove_file(path).unwrap();
        if cfg!(unix) {
            let path = write("loose", "*:*:*:*:pw\n", 0o644);
            let error = lookup(&path, &conn("h", "d", "u")).unwrap_err();
            assert!(error.to_string().contains("chmod 600"), "{error}");
            std::fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn lines_written_read_back() {
        let c = conn("h:x", "d\\b", "u");
        let path = write("round", &line(&c, &field("p:1")), 0o600);
        assert_eq!(lookup(&path, &c).unwrap(), "p:1");
        std::fs::remove_file(path).unwrap();
    }
}
