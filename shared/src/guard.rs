//! The guard's check point for destructive actions. Every tool that destroys something calls
//! `require_confirmation` before it acts, so the fuller guard (env stamp, audit) plugs in here.

use crate::contract::Protection;
use crate::exit::{Error, Result};

/// Refuses a destructive action unless the env's protection level is satisfied:
/// `open` needs nothing, `confirm` needs `--confirm <env>` typed exactly, `locked` also needs
/// `--break-glass "<reason>"`.
pub fn require_confirmation(
    env: &str,
    protection: Protection,
    action: &str,
    confirm: Option<&str>,
    break_glass: Option<&str>,
) -> Result<()> {
    if protection == Protection::Open {
        return Ok(());
    }
    match confirm {
        Some(typed) if typed == env => {}
        Some(typed) => {
            return Err(Error::Refused(format!(
                "{action} on env {env} refused: --confirm {typed:?} does not match the env name; type --confirm {env} exactly"
            )))
        }
        None => {
            return Err(Error::Refused(format!(
                "{action} on env {env} ({} protection) refused: add --confirm {env} to proceed",
                protection.as_str()
            )))
        }
    }
    if protection == Protection::Locked && break_glass.is_none_or(|reason| reason.trim().is_empty())
    {
        return Err(Error::Refused(format!(
            "{action} on env {env} refused: it is locked; add --break-glass \"<reason>\" with --confirm {env}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert!(require_confirmation("dev", Protection::Open, "destroy", None, None).is_ok());
        assert!(require_confirmation("test", Protection::Confirm, "destroy", None, None).is_err());
        assert!(
            require_confirmation("test", Protection::Confirm, "destroy", Some("TEST"), None)
                .is_err()
        );
        assert!(
            require_confirmation("test", Protection::Confirm, "destroy", Some("test"), None)
                .is_ok()
        );
        assert!(
            require_confirmation("prod", Protection::Locked, "destroy", Some("prod"), None)
                .is_err()
        );
        assert!(require_confirmation(
            "prod",
            Protection::Locked,
            "destroy",
            Some("prod"),
            Some("incident 42")
        )
        .is_ok());
    }
}
