//! libpq's connection service file (`PGSERVICE`), read the way libpq reads it: the section
//! `[NAME]` of `PGSERVICEFILE` (else `~/.pg_service.conf`; on Windows
//! `%APPDATA%\postgresql\.pg_service.conf`), else of `PGSYSCONFDIR/pg_service.conf`;
//! `key=value` lines, `#` comments. Keys dbtools cannot honour are refused by name, never
//! ignored; a password written in the file is refused too (it belongs in a 0600 password file,
//! which `passfile=` names).

use crate::envvars;
use crate::exit::{Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Keys dbtools reads from a service section.
const KNOWN: &[&str] = &[
    "host",
    "port",
    "dbname",
    "user",
    "sslmode",
    "sslrootcert",
    "passfile",
    "application_name",
];

/// The settings of service `name`, with the file they came from.
pub(crate) fn read(name: &str) -> Result<(BTreeMap<String, String>, PathBuf)> {
    let user_file = std::env::var_os(envvars::PGSERVICEFILE)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| crate::pgpass::libpq_user_file(".pg_service.conf", ".pg_service.conf"));
    let system_file = std::env::var_os(envvars::PGSYSCONFDIR)
        .filter(|p| !p.is_empty())
        .map(|dir| PathBuf::from(dir).join("pg_service.conf"));
    for path in [user_file, system_file].into_iter().flatten() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if let Some(section) = section(&text, name, &path)? {
            return Ok((section, path));
        }
    }
    Err(Error::BadInput(format!(
        "PGSERVICE={name}: no [{name}] section in PGSERVICEFILE, {} or PGSYSCONFDIR/pg_service.conf", if cfg!(windows) { "%APPDATA%\\postgresql\\.pg_service.conf" } else { "~/.pg_service.conf" }
    )))
}

fn section(
    text: &str,
    name: &str,
    path: &std::path::Path,
) -> Result<Option<BTreeMap<String, String>>> {
    let mut current: Option<&str> = None;
    let mut found: Option<BTreeMap<String, String>> = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if found.is_some() {
                break;
            }
            current = Some(header);
            if header == name {
                found = Some(BTreeMap::new());
            }
            continue;
        }
        let (Some(section), true) = (found.as_mut(), current == Some(name)) else {
            continue;
        };
        let (key, value) = line.split_once('=').ok_or_else(|| {
            Error::BadInput(format!(
                "{}:{}: expected key=value",
                path.display(),
                number + 1
            ))
        })?;
        let key = key.trim();
        if key == "password" {
            return Err(Error::BadInput(format!(
                "{}:{}: service {name} holds a password; dbtools reads passwords only from 0600 files: move it to a password file and name it with passfile=",
                path.display(),
                number + 1
            )));
        }
        if !KNOWN.contains(&key) {
            return Err(Error::BadInput(format!(
                "{}:{}: service {name}: {key} is not supported by dbtools (it reads {}); remove it rather than have it ignored",
                path.display(),
                number + 1,
                KNOWN.join(", ")
            )));
        }
        section.insert(key.to_string(), value.trim().to_string());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_read_and_what_cannot_be_honoured_is_refused() {
        let path = std::path::Path::new("svc.conf");
        let text = "# c\n[other]\nhost=x\n[app]\nhost = db.example.com\nport=6432\n sslmode=verify-full\n[after]\nhost=y\n";
        let app = section(text, "app", path).unwrap().unwrap();
        assert_eq!(app["host"], "db.example.com");
        assert_eq!(app["port"], "6432");
        assert_eq!(app.len(), 3);
        assert!(section(text, "none", path).unwrap().is_none());
        let error = section("[app]\npassword=x\n", "app", path).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("svc.conf:2: service app holds a password"),
            "{error}"
        );
        let error = section("[app]\nsslcert=/c\n", "app", path).unwrap_err();
        assert!(
            error.to_string().contains("sslcert is not supported"),
            "{error}"
        );
    }
}
