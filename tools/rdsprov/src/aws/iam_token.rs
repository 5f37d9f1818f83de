//! RDS IAM database authentication tokens: a SigV4-presigned `connect` URL for one host, port
//! and user, valid 15 minutes, used as the password (no password stored at all). Made with the
//! `aws-sigv4` crate, as the Go, Java and .NET SDKs' RDS utilities do; the unit test checks it
//! against botocore's `generate_db_auth_token` for the same credentials, region and clock.

use aws_sdk_rds::config::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use dbtools::{Error, Result};
use std::time::{Duration, SystemTime};

/// How long a token admits a new connection (RDS's fixed maximum).
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The token for `user` at `host:port` in `region`, signed at `time`.
pub(crate) fn auth_token(
    host: &str,
    port: u16,
    user: &str,
    region: &str,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<String> {
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("rds-db")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| Error::Failed(format!("IAM token: {e}")))?
        .into();
    let user_query: String = url_encode(user);
    let url = format!("https://{host}:{port}/?Action=connect&DBUser={user_query}");
    let request = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| Error::BadInput(format!("IAM token for {user}@{host}: {e}")))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| Error::Failed(format!("IAM token: signing failed: {e}")))?
        .into_parts();
    let mut token = format!("{host}:{port}/?Action=connect&DBUser={user_query}");
    for (name, value) in instructions.params() {
        token.push('&');
        token.push_str(name);
        token.push('=');
        token.push_str(&url_encode(value));
    }
    Ok(token)
}

/// RFC 3986 unreserved characters stay; everything else is %XX (what SigV4 expects).
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The same token botocore makes (it ships with moto's install), compared as host, path and
    /// the set of query parameters: the signature covers them all, whatever their order.
    #[test]
    fn matches_botocore_for_the_same_clock() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        // 2026-11-23T08:00:00Z
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_420_800);
        let ours = auth_token(
            "combine-test.abc.eu-west-1.rds.amazonaws.com",
            5432,
            "app user+1",
            "eu-west-1",
            &credentials,
            time,
        )
        .unwrap();
        let script = "import datetime, botocore.session, botocore.auth\n\
            botocore.auth.get_current_datetime = lambda remove_tzinfo=True: datetime.datetime(2026, 11, 23, 8, 0, 0)\n\
            s = botocore.session.get_session()\n\
            s.set_credentials('AKIDEXAMPLE', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY')\n\
            c = s.create_client('rds', region_name='eu-west-1')\n\
            print(c.generate_db_auth_token('combine-test.abc.eu-west-1.rds.amazonaws.com', 5432, 'app user+1'))\n";
        let output = std::process::Command::new("python3")
            .args(["-c", script])
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .output()
            .expect("this test needs python3 with botocore: pip install 'moto[server]' (bash scripts/setup-test.sh does)");
        assert!(
            output.status.success(),
            "botocore failed (pip install 'moto[server]' installs it): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let theirs = String::from_utf8(output.stdout).unwrap().trim().to_string();
        let split = |token: &str| {
            let (base, query) = token.split_once('?').unwrap();
            (
                base.to_string(),
                query
                    .split('&')
                    .map(str::to_string)
                    .collect::<BTreeSet<_>>(),
            )
        };
        assert_eq!(
            split(&ours),
            split(&theirs),
            "ours: {ours}\nbotocore: {theirs}"
        );
        assert!(ours.contains("X-Amz-Expires=900") && ours.contains("X-Amz-Date=20261123T080000Z"));
    }
}
