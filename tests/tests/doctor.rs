//! `dbconnect doctor` walks DNS → TCP (→ AWS) → TLS → auth → database → stamp → migrations
//! and stops at the first failure with the exit code of its class. Every branch against real
//! PostgreSQL (wrong port, stopped server, no TLS, wrong CA, missing CA file, wrong password,
//! missing database, unstamped and wrongly stamped databases, pending migrations) and, for RDS
//! instances, against moto (stopped, not publicly accessible, a security group without this
//! machine's address — fixed by `rdsprov access allow-current`), plus a host that is no RDS
//! endpoint.

use harness::{CheckIp, MotoServer, PgCluster, Project, Tls, SUPERUSER, SUPERUSER_PASSWORD};
use serde_json::json;

/// A project whose env dev reaches `pg`'s database `db` on `port` with these TLS settings,
/// and one migration in its migrations/.
fn project(db: &str, port: u16, tls: &str) -> Project {
    let project = Project::new(&format!(
        "[env.dev]\nhost = \"127.0.0.1\"\nport = {port}\ndatabase = \"{db}\"\nuser = \"{SUPERUSER}\"\nsecret = \"env:PW\"\n{tls}\n"
    ));
    let dir = project.path().join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("20260101000000_people.sql"),
        "-- migrate:up\nCREATE TABLE people (id int);\n-- migrate:down\nDROP TABLE people;\n",
    )
    .unwrap();
    project
}

fn verify_full(pg: &PgCluster) -> String {
    format!(
        "sslmode = \"verify-full\"\nsslrootcert = \"{}\"",
        pg.ca_cert.as_ref().unwrap().display()
    )
}

fn doctor(project: &Project, password: &str) -> harness::Run {
    project
        .tool("dbconnect")
        .args(["doctor", "--env", "dev", "--timeout", "3"])
        .env("PW", password)
        .run()
}

/// The doctor's steps as (step, outcome) pairs, and the step that failed.
fn outcomes(report: &serde_json::Value) -> Vec<(String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn failed(report: &serde_json::Value) -> &serde_json::Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["outcome"] == "failed")
        .unwrap_or_else(|| panic!("no failed step in {report}"))
}

#[test]
fn a_healthy_env_passes_every_step_and_each_later_step_fails_on_its_own() {
    let pg = PgCluster::start(Tls::Required);
    pg.psql("postgres", "CREATE DATABASE app_dev");
    let project = project("app_dev", pg.port, &verify_full(&pg));

    // Unstamped: the stamp step stops it (exit 3).
    let run = doctor(&project, SUPERUSER_PASSWORD);
    let report = run.expect(3).json();
    assert_eq!(report["kind"], "dbtools.doctor/v1");
    assert_eq!(
        outcomes(&report),
        [
            ("dns".to_string(), "ok".to_string()),
            ("tcp".into(), "ok".into()),
            ("tls".into(), "ok".into()),
            ("auth".into(), "ok".into()),
            ("database".into(), "ok".into()),
            ("stamp".into(), "failed".into())
        ]
    );
    assert_eq!(
        failed(&report)["fix"],
        "`dbguard stamp dev` — only if this database really is env dev's"
    );
    assert!(
        !run.stdout.contains(SUPERUSER_PASSWORD),
        "the profile is redacted"
    );

    pg.stamp("app_dev", "dev");
    // Stamped, one migration pending: exit 1.
    let report = doctor(&project, SUPERUSER_PASSWORD).expect(1).json();
    assert_eq!(failed(&report)["step"], "migrations");
    assert_eq!(failed(&report)["found"], "1 of 1 pending");
    assert_eq!(
        failed(&report)["fix"],
        "`make migrate ENV=dev` (dbmigrate up)"
    );

    project
        .tool("dbmigrate")
        .args(["up", "--env", "dev"])
        .env("PW", SUPERUSER_PASSWORD)
        .run()
        .expect(0);
    let healthy = doctor(&project, SUPERUSER_PASSWORD);
    let report = healthy.expect(0).json();
    assert_eq!(report["ok"], true);
    assert!(outcomes(&report).iter().all(|(_, outcome)| outcome == "ok"));
    assert!(report["steps"][2]["found"]
        .as_str()
        .unwrap()
        .starts_with("established; certificate verified (verify-full)"));

    // Wrong password: auth fails (exit 4).
    let report = doctor(&project, "not-the-password").expect(4).json();
    assert_eq!(failed(&report)["step"], "auth");
    assert!(failed(&report)["found"]
        .as_str()
        .unwrap()
        .contains("authentication failed for user"));

    // Stamped for another env: exit 3, and the fix is the config — or, for a copy made for
    // this env, the adopt path (never a re-stamp of the other env's own database).
    pg.psql("postgres", "CREATE DATABASE app_test");
    pg.stamp("app_test", "test");
    let elsewhere = project_at(&pg, "app_test", &verify_full(&pg));
    let report = doctor(&elsewhere, SUPERUSER_PASSWORD).expect(3).json();
    assert_eq!(
        failed(&report)["found"],
        "this database is stamped test, but the profile is env dev"
    );
    let fix = failed(&report)["fix"].as_str().unwrap().to_string();
    assert!(
        fix.contains("fix host, port and database of env dev")
            && fix.contains("`dbguard adopt dev`, which refuses the real test database"),
        "{fix}"
    );
    // A copy of a database stamped dev (a template clone): the adopt path, not "stamped".
    pg.psql("postgres", "CREATE DATABASE app_dev_src");
    pg.stamp("app_dev_src", "dev");
    pg.psql(
        "postgres",
        "CREATE DATABASE app_dev_copy TEMPLATE app_dev_src",
    );
    let copy = project_at(&pg, "app_dev_copy", &verify_full(&pg));
    let report = doctor(&copy, SUPERUSER_PASSWORD).expect(3).json();
    assert!(
        failed(&report)["found"].as_str().unwrap().starts_with(
            "this database is a copy: its dev stamp was written in database app_dev_src"
        ),
        "{report}"
    );
    assert!(failed(&report)["fix"]
        .as_str()
        .unwrap()
        .contains("`dbguard adopt dev`"));

    // A database that does not exist: auth passes, the database step fails.
    let missing = project_at(&pg, "no_such_db", &verify_full(&pg));
    let report = doctor(&missing, SUPERUSER_PASSWORD).expect(4).json();
    assert_eq!(
        outcomes(&report).last().unwrap(),
        &("database".to_string(), "failed".to_string())
    );
    assert_eq!(report["steps"][3]["outcome"], "ok");
}

fn project_at(pg: &PgCluster, db: &str, tls: &str) -> Project {
    project(db, pg.port, tls)
}

#[test]
fn tcp_and_tls_failures_are_told_apart() {
    let pg = PgCluster::start(Tls::Required);
    let other = PgCluster::start(Tls::Required);
    let plain = PgCluster::start(Tls::None);

    // Nothing listens on the port: refused, and no AWS to ask about 127.0.0.1.
    let closed = dbtools::server::free_port().unwrap();
    let wrong_port = project("postgres", closed, &verify_full(&pg));
    let run = doctor(&wrong_port, SUPERUSER_PASSWORD);
    let report = run.expect(4).json();
    assert_eq!(
        outcomes(&report),
        [
            ("dns".to_string(), "ok".to_string()),
            ("tcp".into(), "failed".into()),
            ("aws".into(), "skipped".into())
        ]
    );
    assert!(failed(&report)["found"]
        .as_str()
        .unwrap()
        .contains("connection refused — nothing listens there"));
    assert_eq!(
        report["steps"][2]["found"],
        "127.0.0.1 is not an RDS endpoint and the profile names no AWS instance: nothing to ask AWS"
    );

    // A server that offers no TLS while verify-full requires it.
    let no_tls = project("postgres", plain.port, &verify_full(&pg));
    let report = doctor(&no_tls, SUPERUSER_PASSWORD).expect(4).json();
    assert_eq!(failed(&report)["step"], "tls");
    assert!(failed(&report)["found"]
        .as_str()
        .unwrap()
        .contains("offers no TLS but sslmode=verify-full requires it"));

    // The CA of another server.
    let wrong_ca = project("postgres", pg.port, &verify_full(&other));
    let report = doctor(&wrong_ca, SUPERUSER_PASSWORD).expect(4).json();
    assert_eq!(failed(&report)["step"], "tls");
    assert!(
        failed(&report)["found"]
            .as_str()
            .unwrap()
            .contains("the server's certificate is not signed by a CA in"),
        "{report}"
    );

    // A CA file that is not there: the profile is wrong (exit 2); where the RDS bundle comes from.
    let missing_ca = project(
        "postgres",
        pg.port,
        "sslmode = \"verify-full\"\nsslrootcert = \"certs/rds-global-bundle.pem\"",
    );
    let report = doctor(&missing_ca, SUPERUSER_PASSWORD).expect(2).json();
    assert_eq!(failed(&report)["step"], "tls");
    assert!(failed(&report)["fix"]
        .as_str()
        .unwrap()
        .contains("https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"));

    // The server stopped: refused.
    let running = project("postgres", pg.port, &verify_full(&pg));
    doctor(&running, SUPERUSER_PASSWORD).expect(3);
    pg.stop();
    let report = doctor(&running, SUPERUSER_PASSWORD).expect(4).json();
    assert_eq!(failed(&report)["step"], "tcp");
}

/// For an RDS instance, a TCP failure is followed by what AWS says, through
/// `rdsprov access show`: stopped, not publicly accessible, or this machine's address not
/// admitted — and after `rdsprov access allow-current`, admitted (the block is elsewhere).
#[test]
fn against_aws_the_doctor_names_the_cause_and_the_command() {
    let moto = MotoServer::start();
    let home = CheckIp::start("203.0.113.7");
    let spec = |public: bool| {
        format!(
            "[env.dev]\nid = \"combine-dev\"\nclass = \"db.t4g.micro\"\ningress = [\"10.0.1.0/24\"]\npublicly_accessible = {public}\n"
        )
    };
    let closed = dbtools::server::free_port().unwrap();
    // The profile names the AWS instance; its host is loopback (moto has no PostgreSQL).
    let project = Project::new(&format!(
        "[instance.combine-dev]\nprovider = \"aws\"\nregion = \"eu-west-1\"\n[env.dev]\ninstance = \"combine-dev\"\nhost = \"127.0.0.1\"\nport = {closed}\ndatabase = \"combine_dev\"\nuser = \"combine_app\"\nsecret = \"env:PW\"\n"
    ));
    std::fs::write(project.path().join("rds.toml"), spec(false)).unwrap();
    let rdsprov = |args: &[&str]| {
        project
            .tool("rdsprov")
            .args(args)
            .arg_path_flag("--spec", &project.path().join("rds.toml"))
            .aws(&moto)
            .env("DBTOOLS_CHECKIP_URL", home.url())
            .env("DBTOOLS_MACHINE_NAME", "ada@laptop")
            .env("RDSPROV_POLL_SECONDS", "0.2")
            .run()
    };
    let doctor = || {
        project
            .tool("dbconnect")
            .args(["doctor", "--env", "dev", "--timeout", "2"])
            .env("PW", "unused")
            .aws(&moto)
            .env("DBTOOLS_CHECKIP_URL", home.url())
            .env("DBTOOLS_MACHINE_NAME", "ada@laptop")
            .run()
    };
    rdsprov(&["apply"]).expect(0);

    let report = doctor().expect(4).json();
    let aws = &report["steps"][2];
    assert_eq!(aws["step"], "aws");
    assert_eq!(aws["outcome"], "failed");
    assert!(aws["found"]
        .as_str()
        .unwrap()
        .contains("combine-dev is available but not publicly accessible"));

    std::fs::write(project.path().join("rds.toml"), spec(true)).unwrap();
    rdsprov(&["apply"]).expect(0);
    let report = doctor().expect(4).json();
    let aws = &report["steps"][2];
    assert!(
        aws["found"]
            .as_str()
            .unwrap()
            .contains("does not admit this machine's address 203.0.113.7"),
        "{aws}"
    );
    assert_eq!(aws["fix"], "run `rdsprov access allow-current dev`");

    rdsprov(&["access", "allow-current", "dev"]).expect(0);
    let report = doctor().expect(4).json();
    let aws = &report["steps"][2];
    assert_eq!(aws["outcome"], "ok");
    assert!(aws["found"]
        .as_str()
        .unwrap()
        .contains("admits 203.0.113.7: the block is elsewhere"));
    assert_eq!(rdsprov(&["plan"]).expect(0).json()["up_to_date"], true);

    // The ISP changes the home address: the doctor names it again, allow-current moves the
    // rule (still one for this machine), and the plan stays clean.
    home.set("198.51.100.23");
    let report = doctor().expect(4).json();
    assert!(report["steps"][2]["found"]
        .as_str()
        .unwrap()
        .contains("does not admit this machine's address 198.51.100.23"));
    let moved = rdsprov(&["access", "allow-current", "dev"])
        .expect(0)
        .json();
    let mine: Vec<&serde_json::Value> = moved["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["machine"] == "ada@laptop")
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["source"], "198.51.100.23/32");
    assert_eq!(doctor().expect(4).json()["steps"][2]["outcome"], "ok");
    assert_eq!(rdsprov(&["plan"]).expect(0).json()["up_to_date"], true);

    moto.call(
        "rds",
        "stop_db_instance",
        json!({"DBInstanceIdentifier": "combine-dev"}),
    );
    let report = doctor().expect(4).json();
    let aws = &report["steps"][2];
    assert_eq!(aws["found"], "combine-dev is stopped");
    assert!(aws["fix"]
        .as_str()
        .unwrap()
        .contains("aws rds start-db-instance --db-instance-identifier combine-dev"));
}
