//! `aws-sm:` secrets, against moto's real Secrets Manager API: the profile names the secret, the
//! tool that connects reads it through `rdsprov secret get` (the only binary linking the AWS
//! SDK) and keeps it a few minutes in the state dir's 0600 cache, so the next tool of a pipeline
//! does not ask again; a missing secret or an unreachable endpoint is a clear error.

use harness::{MotoServer, PgCluster, Project, Tls, Tool};
use std::time::{Duration, Instant};

/// AWS answering nowhere: a closed port on loopback, credentials that would do.
trait Unreachable {
    fn aws_unreachable(self) -> Tool;
}

impl Unreachable for Tool {
    fn aws_unreachable(self) -> Tool {
        self.env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", harness::closed_port()),
        )
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "eu-west-1")
    }
}

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
        assert_eq!(profile.json()["conn"].get("password"), None);
        assert!(!profile.stdout.contains(harness::SUPERUSER_PASSWORD));
        // PGPASSWORD holds something else: the password can only come from Secrets Manager.
        let witness = project
            .tool("dbconnect")
            .args(["check"])
            .env("PGPASSWORD", "not-this-one")
            .stdin(profile.stdout.clone())
            .aws(&moto)
            .run();
        assert_eq!(witness.expect(0).json()["ssl"]["in_use"], true);
        assert!(!witness.stdout.contains(harness::SUPERUSER_PASSWORD));
        assert!(!witness.stderr.contains(harness::SUPERUSER_PASSWORD));
        // Kept for the next tool of the pipeline: 0600, in a 0700 dir; it connects with AWS
        // out of reach.
        let cache = project.state().join("cache/secrets");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for entry in std::fs::read_dir(&cache).unwrap() {
            let mode = entry.unwrap().metadata().unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        project
            .tool("dbconnect")
            .args(["check"])
            .stdin(profile.stdout.clone())
            .aws_unreachable()
            .run()
            .expect(0);
        std::fs::remove_dir_all(&cache).unwrap();
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
    // On a terminal the password is shown only when asked for (--reveal).
    let hidden = Tool::new("rdsprov")
        .args(["secret", "get", "plain"])
        .aws(&moto)
        .run_on_terminal();
    assert_eq!(hidden.code, 0, "{}", hidden.stdout);
    assert!(
        !hidden.stdout.contains("just-a-password") && hidden.stdout.contains("********"),
        "{}",
        hidden.stdout
    );
    let shown = Tool::new("rdsprov")
        .args(["secret", "get", "plain", "--reveal"])
        .aws(&moto)
        .run_on_terminal();
    assert!(shown.stdout.contains("just-a-password"), "{}", shown.stdout);
}

#[test]
fn a_missing_aws_secret_is_named() {
    let moto = MotoServer::start();
    let pg = PgCluster::start(Tls::Required);
    let project = project_for(&pg, "aws-sm:combine/none");
    project
        .tool("dbconnect")
        .args(["check", "--env", "dev"])
        .aws(&moto)
        .run()
        .expect_error(
            "dbconnect",
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
        .tool("dbconnect")
        .args(["check", "--env", "dev"])
        .aws_unreachable()
        .run()
        .expect_error("dbconnect", 4, "cannot reach AWS Secrets Manager");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// `aws-iam:REGION`: no password stored anywhere; connecting (here: exporting the env, which
/// asks for the password by name) makes a 15-minute RDS IAM token for its host, port and user (SigV4 presigned by rdsprov with the usual credentials
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
    let profile = project
        .tool("dbenv")
        .args(["resolve", "test"])
        .aws(&moto)
        .run();
    assert_eq!(profile.expect(0).json()["conn"].get("password"), None);
    assert_eq!(profile.json()["secret"]["source"], "aws-iam");
    let (run, cmdlines) = harness::sample_cmdlines(&["dbenv", "rdsprov"], || {
        project
            .tool("dbenv")
            .args(["export", "test", "--format", "pgpass"])
            .aws(&moto)
            .run()
    });
    let line = run.expect(0).stdout.trim().to_string();
    // host:port:database:user:token — the first four have no colon; the token's are escaped.
    let token = line.splitn(5, ':').nth(4).unwrap().replace("\\:", ":");
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
    assert!(!run.stderr.contains(&token));
    assert!(cmdlines.iter().all(|c| !c.contains("X-Amz-Signature")));

    // The token is kept (0600) for the next tool: a second export asks AWS nothing.
    let cached = project
        .tool("dbenv")
        .args(["export", "test", "--format", "pgpass"])
        .env("AWS_ACCESS_KEY_ID", "")
        .env("AWS_SECRET_ACCESS_KEY", "")
        .run();
    assert_eq!(cached.expect(0).stdout.trim(), line);
    // Without credentials (and nothing cached): the clear, fast error of the AWS provider.
    std::fs::remove_dir_all(project.state().join("cache")).unwrap();
    let started = Instant::now();
    project
        .tool("dbenv")
        .args(["export", "test", "--format", "pgpass"])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_ACCESS_KEY_ID", "")
        .env("AWS_SECRET_ACCESS_KEY", "")
        .run()
        .expect_text_error("dbenv", 4, "no AWS credentials");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The secret is rotated after a pipeline's first tool read it (a new value in Secrets Manager,
/// the role's password changed on the server): the next tool finds the old value in the cache,
/// is refused, reads the secret again once past the cache, connects, and says the secret had
/// changed. A server password changed without the secret is named as such.
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
    // The first tool connects: the secret's first value is read and kept.
    let check = || {
        project
            .tool("dbconnect")
            .args(["check"])
            .stdin(resolved.stdout.clone())
            .aws(&moto)
            .run()
    };
    check().expect(0);

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
    let checked = check();
    let witness = checked.expect(0).json();
    assert_eq!(witness["user"], "combine_app");
    assert!(
        checked.stderr.contains(
            "the secret aws-sm:combine/dev/app had changed since it was last read (rotated?): connecting with its new value"
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
    check().expect_error(
        "dbconnect",
        4,
        "the secret aws-sm:combine/dev/app still holds that password",
    );
}
