//! `aws-sm:` secrets, against moto's real Secrets Manager API: dbenv resolves them through
//! `rdsprov secret get` (the only binary linking the AWS SDK), the pipeline connects with the
//! password it found, and a missing secret or an unreachable endpoint is a clear error.

use harness::{MotoServer, PgCluster, Project, Tls, Tool};
use std::time::{Duration, Instant};

fn project_for(pg: &PgCluster, secret: &str) -> Project {
    project_as(pg, secret, "postgres")
}

fn project_as(pg: &PgCluster, secret: &str, user: &str) -> Project {
    Project::new(&format!(
        r#"app = "combine"
[env.dev]
host = "127.0.0.1"
port = {}
database = "postgres"
user = "{user}"
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

/// The secret is rotated after the profile was resolved (a new value in Secrets Manager, the
/// role's password changed on the server): the tool holding the stale profile reads the secret
/// again once, connects, and says the secret had changed. A server password changed without
/// the secret is named as such.
#[test]
fn a_rotated_secret_is_read_again_once() {
    let moto = MotoServer::start();
    let pg = PgCluster::start(Tls::Required);
    let first = "rotation-test-first-password-0001";
    let second = "rotation-test-second-password-0002";
    pg.psql(
        "postgres",
        &format!("CREATE ROLE combine_app LOGIN PASSWORD '{first}'"),
    );
    let secret = |password: &str| {
        serde_json::json!({"username": "combine_app", "password": password}).to_string()
    };
    moto.create_secret("combine/dev/app", &secret(first));
    let project = project_as(&pg, "aws-sm:combine/dev/app", "combine_app");
    let resolved = project
        .tool("dbenv")
        .args(["resolve", "dev"])
        .aws(&moto)
        .run();
    resolved.expect(0);
    assert_eq!(resolved.json()["conn"]["password"], first);

    // Rotation: Secrets Manager gets a new value, the server the new password.
    moto.call(
        "secretsmanager",
        "put_secret_value",
        serde_json::json!({"SecretId": "combine/dev/app", "SecretString": secret(second)}),
    );
    pg.psql(
        "postgres",
        &format!("ALTER ROLE combine_app PASSWORD '{second}'"),
    );
    let checked = Tool::new("dbconnect")
        .args(["check"])
        .stdin(resolved.stdout.clone())
        .aws(&moto)
        .run();
    let witness = checked.expect(0).json();
    assert_eq!(witness["user"], "combine_app");
    assert!(
        checked.stderr.contains(
            "the secret aws-sm:combine/dev/app had changed since this profile was resolved (rotated?): connecting with its new value"
        ),
        "{}",
        checked.stderr
    );
    assert!(!checked.stderr.contains(first) && !checked.stderr.contains(second));

    // The server's password changed behind the secret's back: the secret is read, still wrong.
    pg.psql(
        "postgres",
        "ALTER ROLE combine_app PASSWORD 'changed-by-hand-not-in-the-secret'",
    );
    let fresh = project
        .tool("dbenv")
        .args(["resolve", "dev"])
        .aws(&moto)
        .run();
    Tool::new("dbconnect")
        .args(["check"])
        .stdin(fresh.stdout.clone())
        .aws(&moto)
        .run()
        .expect_error(
            "dbconnect",
            4,
            "the secret aws-sm:combine/dev/app in AWS Secrets Manager still holds that password",
        );
}
