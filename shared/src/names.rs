//! Validation and quoting of the names dbtools puts into paths and SQL: env names, instance ids,
//! database and role names. We reject odd names early (a clear message beats a surprise) and still
//! quote every identifier we send, so a name can never become SQL.

use crate::exit::{Error, Result};

/// Env names: lowercase letters, digits, `-` and `_`, starting with a letter (`dev`, `test`, `qa-2`).
pub fn check_env_name(name: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    check(name, "env name", 32, allowed).map_err(|error| {
        // `Test` for `test`: names are lower case, say which one was meant.
        let lower = name.to_ascii_lowercase();
        match check(&lower, "env name", 32, allowed) {
            Ok(()) if lower != name => {
                Error::BadInput(format!("{} — did you mean {lower:?}?", error.message()))
            }
            _ => error,
        }
    })
}

/// Instance ids follow RDS's DBInstanceIdentifier rules: letters, digits and single hyphens,
/// starting with a letter, at most 63 characters, not ending with a hyphen.
pub fn check_instance_id(id: &str) -> Result<()> {
    check(id, "instance id", 63, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    })?;
    if id.ends_with('-') || id.contains("--") {
        return Err(Error::BadInput(format!(
            "instance id {id:?} may not end with '-' or contain '--' (RDS rule)"
        )));
    }
    Ok(())
}

/// Database and role names we create: lowercase letters, digits and `_`, starting with a letter
/// or `_`, at most 63 bytes (PostgreSQL's NAMEDATALEN), never a `pg_` name.
pub fn check_sql_name(name: &str, what: &str) -> Result<()> {
    check(name, what, 63, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
    })?;
    if name.starts_with("pg_") {
        return Err(Error::BadInput(format!(
            "{what} {name:?}: names starting with pg_ are reserved"
        )));
    }
    Ok(())
}

fn check(name: &str, what: &str, max: usize, allowed: impl Fn(char) -> bool) -> Result<()> {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if name.is_empty() || name.len() > max || !first_ok || !name.chars().all(allowed) {
        return Err(Error::BadInput(format!(
            "{what} {name:?} is not allowed: use at most {max} lowercase letters, digits{} starting with a letter",
            if what == "env name" { ", '-' and '_'" } else if what == "instance id" { " and '-'" } else { " and '_'" }
        )));
    }
    Ok(())
}

/// Quotes an SQL identifier (`"a""b"`), whatever it holds.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal (`'it''s'`); standard_conforming_strings is on since 9.1.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_rejected() {
        for bad in [
            "",
            "Dev",
            "dev test",
            "dev;drop",
            "d\"x",
            "1dev",
            "dev'",
            "a".repeat(40).as_str(),
        ] {
            assert!(check_env_name(bad).is_err(), "{bad:?}");
        }
        for bad in ["x y", "x\"; DROP TABLE t; --", "pg_app", "App", "a-b"] {
            assert!(check_sql_name(bad, "database").is_err(), "{bad:?}");
        }
        assert!(check_instance_id("combine--dev").is_err());
        assert!(check_instance_id("combine-dev-").is_err());
        check_env_name("qa-2").unwrap();
        check_sql_name("combine_dev", "database").unwrap();
        check_instance_id("combine-dev").unwrap();
    }

    #[test]
    fn quoting_doubles_the_quote_character() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
