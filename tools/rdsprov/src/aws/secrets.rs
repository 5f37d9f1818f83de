//! Reads from AWS Secrets Manager, for `rdsprov secret get`. This is the only place besides the
//! AWS provider that links the AWS SDK: `dbenv` and the other tools resolve `aws-sm:` secrets by
//! running `rdsprov secret get` (see `dbtools::secrets`), so they stay small and start fast.
//!
//! The usual AWS environment applies (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, …). A
//! secret named by ARN is read in the ARN's region. Errors never contain the secret's value.

use aws_sdk_secretsmanager::error::{DisplayErrorContext, SdkError};
use dbtools::contract::{SecretRef, SecretValue};
use dbtools::{secrets, Error, Result};
use std::time::Duration;

/// The region written in a Secrets Manager ARN (`arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`).
fn region_of_arn(reference: &str) -> Option<String> {
    let parts: Vec<&str> = reference.splitn(7, ':').collect();
    (parts.len() >= 6 && parts[0] == "arn" && parts[2] == "secretsmanager" && !parts[3].is_empty())
        .then(|| parts[3].to_string())
}

/// Fetches a secret's current value (`AWSCURRENT`).
pub(crate) fn get_secret(reference: &str, region: Option<&str>) -> Result<SecretValue> {
    let secret = SecretRef {
        source: dbtools::contract::SecretSource::AwsSm,
        reference: reference.into(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the AWS client runtime: {e}")))?;
    runtime.block_on(async {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(20))
                .build(),
        );
        if let Some(region) = region.map(str::to_string).or_else(|| region_of_arn(reference)) {
            loader = loader.region(aws_config::Region::new(region));
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(Error::BadInput(format!(
                "secret {secret}: no AWS region: set AWS_REGION (or region in the instance's config), or name the secret by ARN"
            )));
        }
        let client = aws_sdk_secretsmanager::Client::new(&config);
        let answer = client.get_secret_value().secret_id(reference).send().await;
        let output = answer.map_err(|e| describe(&secret, e))?;
        let text = output
            .secret_string()
            .ok_or_else(|| Error::BadInput(format!("secret {secret} holds binary data, not a password string")))?;
        secrets::parse_secret_string(&secret, text)
    })
}

fn describe<R: std::fmt::Debug>(
    secret: &SecretRef,
    error: SdkError<aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError, R>,
) -> Error {
    match &error {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            if inner.is_resource_not_found_exception() {
                return Error::BadInput(format!("secret {secret} does not exist in AWS Secrets Manager (check the name and region)"));
            }
            let code = aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(inner).unwrap_or("unknown");
            let message = aws_sdk_secretsmanager::error::ProvideErrorMetadata::message(inner).unwrap_or("");
            if code.contains("AccessDenied") || code.contains("UnrecognizedClient") || code.contains("InvalidSignature") || code.contains("ExpiredToken") {
                return Error::Unreachable(format!("secret {secret}: AWS refused the credentials ({code}: {message}): check AWS_PROFILE or your credentials"));
            }
            Error::Failed(format!("secret {secret}: AWS Secrets Manager answered {code}: {message}"))
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => Error::Unreachable(format!(
            "secret {secret}: cannot reach AWS Secrets Manager ({}): check the network, AWS_ENDPOINT_URL and the region",
            one_line(&DisplayErrorContext(&error).to_string())
        )),
        _ => Error::Unreachable(format!("secret {secret}: {}", one_line(&DisplayErrorContext(&error).to_string()))),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The password in a Secrets Manager secret of RDS's JSON shape (ours, or one RDS manages).
pub(crate) fn read_secret_password(aws: &crate::aws::Aws, secret_id: &str) -> Result<String> {
    let answer = aws
        .block_on(aws.secrets.get_secret_value().secret_id(secret_id).send())
        .map_err(|e| crate::aws::describe("reading the master secret", e))?;
    let secret = SecretRef {
        source: dbtools::contract::SecretSource::AwsSm,
        reference: secret_id.to_string(),
    };
    Ok(secrets::parse_secret_string(&secret, answer.secret_string().unwrap_or_default())?.password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_comes_from_an_arn() {
        assert_eq!(
            region_of_arn("arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCd")
                .as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_of_arn("combine/dev"), None);
    }
}
