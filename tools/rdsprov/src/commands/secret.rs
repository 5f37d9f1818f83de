//! `rdsprov secret get ID` (a Secrets Manager secret, what dbenv runs for `aws-sm:`
//! references) and `rdsprov secret iam-token` (an RDS IAM auth token); redacted on a terminal
//! unless `--reveal`.

use crate::aws::{iam_token, secrets, Aws};
use dbtools::contract;
use dbtools::output::{self, Output};
use dbtools::{ExitStatus, Result};

/// Prints an IAM auth token for `user` at `host:port`.
pub(super) fn iam_token(
    out: Output,
    host: &str,
    port: u16,
    user: &str,
    region: &str,
    reveal: bool,
) -> Result<ExitStatus> {
    dbtools::names::check_sql_name(user, "user")?;
    let aws = Aws::connect(region)?;
    let token = iam_token::auth_token(
        host,
        port,
        user,
        region,
        &aws.credentials,
        std::time::SystemTime::now(),
    )?;
    let mut value = contract::SecretValue {
        source: dbtools::contract::SecretSource::AwsIam,
        reference: region.into(),
        username: Some(user.into()),
        password: token,
    };
    if !out.shows_secrets(reveal) {
        value.password = contract::REDACTED.into();
    }
    out.emit(&value, || {
        output::key_values(&[
            ("secret", format!("aws-iam:{region}")),
            ("username", user.to_string()),
            ("token", value.password.clone()),
        ])
    })?;
    Ok(ExitStatus::Success)
}

/// Prints an AWS secret. Needs no dbtools.toml: dbenv runs this for any profile with an aws-sm secret.
pub(super) fn get(out: Output, id: &str, region: Option<&str>, reveal: bool) -> Result<ExitStatus> {
    let value = secrets::get_secret(id, region)?;
    let mut shown = value.clone();
    if !out.shows_secrets(reveal) {
        shown.password = contract::REDACTED.into();
    }
    out.emit(&shown, || {
        output::key_values(&[
            ("secret", format!("aws-sm:{}", shown.reference)),
            (
                "username",
                shown.username.clone().unwrap_or_else(|| "-".into()),
            ),
            ("password", shown.password.clone()),
        ])
    })?;
    Ok(ExitStatus::Success)
}
