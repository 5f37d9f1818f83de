//! `dbenv resolve --from-env | dbconnect check` through each of libpq's password sources, on a
//! real PostgreSQL: the URL in `DATABASE_URL`, `PGPASSWORD`, `PGPASSFILE`, `~/.pgpass` — with
//! libpq's matching and its 0600 rule — and the profile in between never holds the password.

use dbtools::contract::SslMode;
use harness::{PgCluster, TempDir, Tls, Tool};

/// `dbenv resolve --from-env | dbconnect check` with `vars` set for both (outside any project).
fn pipeline(vars: &[(&str, String)]) -> (harness::Run, harness::Run) {
    let with = |mut tool: Tool| {
        for (key, value) in vars {
            tool = tool.env(key, value);
        }
        // Tool::new's PGPASSWORD is the harness password: only the source under test may hold it.
        if !vars.iter().any(|(key, _)| *key == "PGPASSWORD") {
            tool = tool.env("PGPASSWORD", "");
        }
        tool
    };
    let profile = with(Tool::new("dbenv").args(["resolve", "--from-env"])).run();
    let checked = with(Tool::new("dbconnect").args(["check"]))
        .stdin(profile.stdout.clone())
        .run();
    (profile, checked)
}

fn libpq_vars(pg: &PgCluster) -> Vec<(&'static str, String)> {
    vec![
        ("PGHOST", "127.0.0.1".to_string()),
        ("PGPORT", pg.port.to_string()),
        ("PGUSER", harness::SUPERUSER.to_string()),
        ("PGDATABASE", "postgres".to_string()),
        ("PGSSLMODE", "disable".to_string()),
    ]
}

fn connected(source: &str, (profile, checked): (harness::Run, harness::Run)) {
    let shown = profile.expect(0).json();
    assert_eq!(shown["secret"]["source"], source, "{}", profile.stdout);
    assert!(!profile.stdout.contains(harness::SUPERUSER_PASSWORD));
    assert_eq!(checked.expect(0).json()["user"], harness::SUPERUSER);
}

#[test]
fn each_libpq_password_source_connects() {
    let pg = PgCluster::start(Tls::None);
    let home = TempDir::new("home");
    let url = dbtools::url::format(&pg.conn(SslMode::Disable), true);
    connected(
        "url",
        pipeline(&[
            ("DATABASE_URL", url),
            ("HOME", home.path.display().to_string()),
        ]),
    );

    let mut vars = libpq_vars(&pg);
    vars.push(("HOME", home.path.display().to_string()));
    let mut with_password = vars.clone();
    with_password.push(("PGPASSWORD", harness::SUPERUSER_PASSWORD.to_string()));
    connected("env", pipeline(&with_password));

    // A password file named by PGPASSFILE: the first matching line wins, wildcards and all.
    let passfile = home.path.join("passfile");
    std::fs::write(
        &passfile,
        format!(
            "# comment\n127.0.0.1:{}:other:*:wrong\n*:{}:postgres:{}:{}\n",
            pg.port,
            pg.port,
            harness::SUPERUSER,
            harness::SUPERUSER_PASSWORD
        ),
    )
    .unwrap();
    dbtools::state::set_mode(&passfile, 0o600).unwrap();
    let mut with_passfile = vars.clone();
    with_passfile.push(("PGPASSFILE", passfile.display().to_string()));
    connected("pgpass", pipeline(&with_passfile));

    // ~/.pgpass when PGPASSFILE is not set.
    std::fs::copy(&passfile, home.path.join(".pgpass")).unwrap();
    dbtools::state::set_mode(&home.path.join(".pgpass"), 0o600).unwrap();
    connected("pgpass", pipeline(&vars));

    // A service (PGSERVICE): its section names the server, its passfile= the password file.
    std::fs::write(
        home.path.join(".pg_service.conf"),
        format!(
            "[other]\nhost=elsewhere\n[app]\nhost=127.0.0.1\nport={}\ndbname=postgres\nuser={}\nsslmode=disable\npassfile=passfile\n",
            pg.port,
            harness::SUPERUSER
        ),
    )
    .unwrap();
    connected(
        "pgpass",
        pipeline(&[
            ("PGSERVICE", "app".to_string()),
            ("HOME", home.path.display().to_string()),
        ]),
    );

    // A password file others may read is ignored, as libpq ignores it: said, with the fix.
    dbtools::state::set_mode(&home.path.join(".pgpass"), 0o644).unwrap();
    let (profile, checked) = pipeline(&vars);
    profile.expect(0);
    checked.expect_error("dbconnect", 2, "run chmod 600");
}

/// A piped profile may not name a secret the project's config does not vouch for: an edited
/// profile cannot make a tool read `AWS_SECRET_ACCESS_KEY` (or any variable, or any file) and
/// send it to the host it names.
#[test]
fn a_piped_profile_cannot_aim_a_secret_elsewhere() {
    let pg = PgCluster::start(Tls::None);
    for (source, reference) in [
        ("env", "AWS_SECRET_ACCESS_KEY"),
        ("pgpass", "/etc/passwd"),
        ("url", "HOME"),
        ("local", "combine-test/combine_app"),
        ("aws-sm", "prod/master"),
    ] {
        let profile = serde_json::json!({
            "kind": "dbtools.profile/v2", "env": "dev", "protection": "open",
            "conn": pg.conn(SslMode::Disable),
            "secret": {"source": source, "ref": reference},
        });
        Tool::new("dbconnect")
            .args(["check"])
            .env("AWS_SECRET_ACCESS_KEY", "aws-secret-that-must-stay-home")
            .stdin(profile.to_string())
            .run()
            .expect_error(
                "dbconnect",
                2,
                &format!("the profile on stdin names the secret {source}:{reference}, which is not honoured outside a project"),
            );
    }
}

/// What dbtools' TLS cannot honour is refused by name, never ignored; a DATABASE_URL or PGHOST
/// a configured env does not use is said once, by the tool that resolves the env.
#[test]
fn what_cannot_be_honoured_is_refused_and_what_is_unused_is_said() {
    let home = TempDir::new("home");
    let base = [
        ("PGHOST", "db.example.com".to_string()),
        ("HOME", home.path.display().to_string()),
    ];
    let mut with_cert = base.to_vec();
    with_cert.push(("PGSSLCERT", "/client.crt".to_string()));
    let (profile, _) = pipeline(&with_cert);
    profile.expect_error("dbenv", 2, "PGSSLCERT is set, which dbtools cannot honour");
    let (profile, _) = pipeline(&[(
        "DATABASE_URL",
        "postgres://u:p@db.example.com/d?sslcert=/c.crt".to_string(),
    )]);
    profile.expect_error(
        "dbenv",
        2,
        "parameter \"sslcert\" is not supported by dbtools",
    );
    std::fs::write(
        home.path.join(".pg_service.conf"),
        "[app]\nhost=h\npassword=x\n",
    )
    .unwrap();
    let mut with_service = base.to_vec();
    with_service.push(("PGSERVICE", "app".to_string()));
    let (profile, _) = pipeline(&with_service);
    profile.expect_error("dbenv", 2, "service app holds a password");

    let project = harness::Project::new(
        "[env.dev]\nhost = \"dev.example.com\"\ndatabase = \"d\"\nuser = \"u\"\n",
    );
    let run = project
        .tool("dbenv")
        .args(["resolve", "dev"])
        .env("DATABASE_URL", "postgres://u:p@elsewhere/d")
        .run();
    run.expect(0);
    assert!(
        run.stderr
            .contains("dbenv: DATABASE_URL is set but not used: env dev comes from"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(":p@"), "{}", run.stderr);
}
