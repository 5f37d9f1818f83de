//! `aws-sm:` secrets, against moto's real Secrets Manager API: dbenv resolves them through
//! `rdsprov secret get` (the only binary linking the AWS SDK), the pipeline connects with the
//! password it found, and a missing secret or an unreachable endpoint is a clear error.

use harness::{MotoServer, PgCluster, Project, Tls, Tool};
use std::time::{Duration, Instant};

fn project_for(pg: &PgCluster, secret: &str) -> Project {
    Project::new(&format!(
        r#"app = "combine"
[env.dev]
host = "127.0.0.1"
port = {}
database = "postgres"
user = "postgres"
secret = "{secret}"
sslmode = "verify-full"
sslrootcert = "{}"
"#,
        pg.port,
        pg.ca_cert.as_ref().unwrap().display()
    ))
}

#[test]
fn dbenv_resolves_an_aws_secret_and_the_pipeline_connects() {
    let moto = MotoServer::start();
    let pg = PgCluster::start(Tls::Required);
    let arn = moto.create_secret(
        "combine/dev/app",
        &serde_json::json!({"engine": "postgres", "username": "postgres", "password": harness::SUPERUSER_PASSWORD}).to_string(),
    );
    assert!(
        arn.starts_with("arn:aws:secretsmanager:eu-west-1:"),
        "{arn}"
    );
    for reference in [
        "aws-sm:combine/dev/app".to_string(),
        format!("aws-sm:{arn}"),
    ] {
        let project = project_for(&pg, &reference);
        let profile = project
            .tool("dbenv")
            .args(["resolve", "dev"])
            .aws(&moto)
            .run();
        profile.expect(0);
        assert_eq!(profile.json()["secret"]["source"], "aws-sm");
        assert_eq!(
            profile.json()["conn"]["password"],
            harness::SUPERUSER_PASSWORD
        );
        let witness = Tool::new("dbconnect")
            .args(["check"])
            .stdin(profile.stdout.clone())
            .run()
            .expect(0)
            .json();
        assert_eq!(witness["ssl"]["in_use"], true);
        assert!(!profile.stderr.contains(harness::SUPERUSER_PASSWORD));
    }
}

#[test]
fn rdsprov_secret_get_redacts_on_request_and_reads_bare_strings() {
    let moto = MotoServer::start();
    moto.create_secret("plain", "just-a-password");
    let run = Tool::new("rdsprov")
        .args(["secret", "get", "plain"])
        .aws(&moto)
        .run();
    let value = run.expect(0).json();
    assert_eq!(value["kind"], "dbtools.secret/v1");
    assert_eq!(value["password"], "just-a-password");
}

#[test]
fn a_missing_aws_secret_is_named() {
    let moto = MotoServer::start();
    let pg = PgCluster::start(Tls::Required);
    let project = project_for(&pg, "aws-sm:combine/none");
    project
        .tool("dbenv")
        .args(["resolve", "dev"])
        .aws(&moto)
        .run()
        .expect_error(
            "dbenv",
            2,
            "secret aws-sm:combine/none does not exist in AWS Secrets Manager",
        );
}

#[test]
fn an_unreachable_aws_endpoint_is_exit_4_and_fast() {
    let pg = PgCluster::start(Tls::Required);
    let project = project_for(&pg, "aws-sm:combine/dev/app");
    let started = Instant::now();
    project
        .tool("dbenv")
        .args(["resolve", "dev"])
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", harness::closed_port()),
        )
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "eu-west-1")
        .run()
        .expect_error("dbenv", 4, "cannot reach AWS Secrets Manager");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// `aws-iam:REGION`: no password stored anywhere; resolving the env makes a 15-minute RDS IAM
/// token for its host, port and user (SigV4 presigned by rdsprov with the usual credentials
/// chain), which never reaches a command line or stderr. (The token's bytes are checked against
/// botocore's in rdsprov's unit tests.)
#[test]
fn aws_iam_secrets_resolve_to_a_fresh_token() {
    let moto = MotoServer::start();
    let project = Project::new(
        r#"app = "combine"
[env.test]
protection = "confirm"
host = "combine-test.abc.eu-west-1.rds.amazonaws.com"
database = "billing"
user = "billing"
secret = "aws-iam:eu-west-1"
sslrootcert = "system"
"#,
    );
    let (run, cmdlines) = harness::sample_cmdlines(|| {
        project
            .tool("dbenv")
            .args(["resolve", "test"])
            .aws(&moto)
            .run()
    });
    let profile = run.expect(0).json();
    let token = profile["conn"]["password"].as_str().unwrap().to_string();
    assert!(
        token.starts_with(
            "combine-test.abc.eu-west-1.rds.amazonaws.com:5432/?Action=connect&DBUser=billing&"
        ),
        "{token}"
    );
    for part in [
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "X-Amz-Credential=testing%2F",
        "%2Feu-west-1%2Frds-db%2Faws4_request",
        "X-Amz-Expires=900",
        "X-Amz-Signature=",
    ] {
        assert!(token.contains(part), "{part} missing in {token}");
    }
    assert_eq!(profile["secret"]["source"], "aws-iam");
    assert!(!run.stderr.contains(&token));
    assert!(cmdlines.iter().all(|c| !c.contains("X-Amz-Signature")));

    // Without credentials: the clear, fast error of the AWS provider.
    let started = Instant::now();
    project
        .tool("dbenv")
        .args(["resolve", "test"])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_ACCESS_KEY_ID", "")
        .env("AWS_SECRET_ACCESS_KEY", "")
        .run()
        .expect_error("dbenv", 4, "no AWS credentials");
    assert!(started.elapsed() < Duration::from_secs(10));
}
