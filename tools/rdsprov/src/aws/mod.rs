//! The AWS provider: RDS for PostgreSQL instances or Aurora Serverless v2 clusters (`aurora`),
//! their security groups, parameter groups, master secrets and CloudWatch alarms (to an SNS
//! topic), from a spec (`spec`). The steps run one way: `observe` reads what exists (describe
//! calls only), `plan` turns spec + observation into changes (pure), `apply` makes exactly
//! those changes — so a second `apply` makes no mutating call at all. What differs between an
//! RDS instance and an Aurora cluster is behind `target`; the settings both manage are one
//! table, `attributes`. `progress` runs several envs at once, each saying what it does.
//!
//! The usual AWS environment applies (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, …);
//! throttling and 5xx answers are retried by the SDK with backoff before they become errors.
//! Credentials are checked first, with a short timeout, so a machine without any fails at once
//! with what to set instead of after a long probe.

pub(crate) mod alarms;
pub(crate) mod apply;
pub(crate) mod attributes;
pub(crate) mod catalog;
pub(crate) mod databases;
pub(crate) mod destroy;
pub(crate) mod iam_token;
pub(crate) mod ingress;
pub(crate) mod observe;
pub(crate) mod offer;
pub(crate) mod plan;
pub(crate) mod pricing;
pub(crate) mod progress;
pub(crate) mod restore;
pub(crate) mod rules;
pub(crate) mod secrets;
pub(crate) mod snapshot;
pub(crate) mod spec;
pub(crate) mod stamps;
pub(crate) mod state;
pub(crate) mod target;
pub(crate) mod tenants;

use aws_sdk_rds::config::ProvideCredentials;
use aws_sdk_rds::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use dbtools::{Error, Result};
use std::time::Duration;

/// The clients of one region, and the runtime their calls run on.
pub(crate) struct Aws {
    pub runtime: tokio::runtime::Runtime,
    pub rds: aws_sdk_rds::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub sns: aws_sdk_sns::Client,
    pub region: String,
    pub credentials: aws_sdk_rds::config::Credentials,
}

impl Aws {
    pub(crate) fn connect(region: &str) -> Result<Aws> {
        // Several envs run at once, each on its own thread: the runtime's workers drive every
        // thread's calls.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Failed(format!("cannot start the AWS client runtime: {e}")))?;
        let config = runtime.block_on(async {
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(region.to_string()))
                .timeout_config(
                    aws_config::timeout::TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(3))
                        .operation_timeout(Duration::from_secs(60))
                        .build(),
                )
                .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(5))
                .load()
                .await
        });
        let credentials = config.credentials_provider().ok_or_else(no_credentials)?;
        let credentials = runtime.block_on(async {
            match tokio::time::timeout(Duration::from_secs(5), credentials.provide_credentials())
                .await
            {
                Ok(Ok(credentials)) => Ok(credentials),
                _ => Err(no_credentials()),
            }
        })?;
        Ok(Aws {
            rds: aws_sdk_rds::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            runtime,
            region: region.to_string(),
            credentials,
        })
    }

    pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

fn no_credentials() -> Error {
    Error::Unreachable(
        "no AWS credentials: set AWS_PROFILE (a profile in ~/.aws), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; on EC2 the instance role is used".into(),
    )
}

/// The error code AWS answered with (`DBInstanceNotFound`, …), if it answered at all.
pub(crate) fn code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// An SDK error as ours: no answer → exit 4; credentials refused → exit 4; throttled after the
/// SDK's retries → exit 5 saying so; anything else → exit 5 with AWS's code and message.
pub(crate) fn describe<E, R>(what: &str, error: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &error {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => Error::Unreachable(format!(
            "{what}: AWS does not answer ({}); check the network, AWS_REGION and AWS_ENDPOINT_URL",
            DisplayErrorContext(&error)
        )),
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code().unwrap_or("unknown");
            let message = err.message().unwrap_or_default();
            match code {
                "InvalidClientTokenId" | "UnrecognizedClientException" | "SignatureDoesNotMatch"
                | "AuthFailure" | "ExpiredToken" | "ExpiredTokenException" => Error::Unreachable(
                    format!("{what}: AWS refused the credentials ({code}: {message}); refresh them (aws sso login, or new keys)"),
                ),
                "Throttling" | "ThrottlingException" | "RequestLimitExceeded" => Error::Failed(format!(
                    "{what}: AWS kept throttling after 5 attempts with backoff ({code}); rerun in a minute — what was done so far stays, and the rerun completes it"
                )),
                _ => Error::Failed(format!("{what}: {code}: {message}")),
            }
        }
        _ => Error::Failed(format!("{what}: {}", DisplayErrorContext(&error))),
    }
}
