//! A newcomer's first hour, as the terminal and the pipes show it: messages that say a thing
//! once and truly, errors that point at what was meant, the witness carrying the stamp, TLS as
//! strict as libpq, links that stay inside the project, and no silent success.

use dbtools::contract::SslMode;
use harness::{PgCluster, Project, TempDir, Tls, Tool};

fn stamped_cluster() -> PgCluster {
    let pg = PgCluster::start(Tls::Offered);
    pg.stamp("postgres", "dev");
    pg
}

fn profile_for(pg: &PgCluster, env: &str, conn: &dbtools::contract::Conn) -> String {
    pg.profile(env, conn)
}

#[test]
fn cli_errors_point_at_what_was_meant() {
    let none = Tool::new("dbconnect").run();
    none.expect(2);
    assert!(
        none.stderr
            .contains("dbconnect: a command is needed: check, wait, doctor, url, psql"),
        "{}",
        none.stderr
    );
    let typo = Tool::new("dbconnect").args(["chek"]).run();
    typo.expect(2);
    assert!(
        typo.stderr
            .contains("tip: a similar subcommand exists: 'check'"),
        "{}",
        typo.stderr
    );
    let upper = Tool::new("dbconnect")
        .args(["check", "--env", "Test"])
        .run();
    upper.expect(2);
    assert!(
        upper.stderr.contains("did you mean \"test\"?"),
        "{}",
        upper.stderr
    );
}

#[test]
fn the_witness_carries_the_stamp_and_refuses_another_env_s_database() {
    let pg = stamped_cluster();
    let conn = pg.conn(SslMode::VerifyFull);
    let check = Tool::new("dbconnect")
        .args(["check"])
        .stdin(profile_for(&pg, "dev", &conn))
        .run();
    let witness = check.expect(0).json();
    assert_eq!(witness["stamp"]["env"], "dev");
    assert_eq!(check.stderr, "");

    // The same database through a profile that says test: the database decides, exit 3.
    let wrong = Tool::new("dbconnect")
        .args(["check"])
        .stdin(profile_for(&pg, "test", &conn))
        .run();
    wrong.expect_error("dbconnect", 3, "this database is stamped dev");
    assert!(
        wrong.stderr.contains("but the profile is env test"),
        "{}",
        wrong.stderr
    );

    // No stamp at all: the check passes (it is read-only) and says what writes will do.
    pg.psql("postgres", "create database bare");
    let mut bare = conn.clone();
    bare.dbname = "bare".into();
    let unstamped = Tool::new("dbconnect")
        .args(["check"])
        .stdin(profile_for(&pg, "dev", &bare))
        .run();
    assert_eq!(unstamped.expect(0).json()["stamp"], serde_json::Value::Null);
    assert!(
        unstamped
            .stderr
            .contains("carries no env stamp: tools that write refuse it until `dbguard stamp dev`"),
        "{}",
        unstamped.stderr
    );
}

#[test]
fn tls_require_with_a_root_certificate_checks_the_chain_like_libpq() {
    let pg = stamped_cluster();
    let other = TempDir::new("other-ca");
    let (other_ca, _) = dbtools::server::tls::ensure_ca(&other.path).unwrap();
    let check = |sslmode: SslMode, rootcert: Option<&std::path::Path>, host: &str| {
        let mut conn = pg.conn(sslmode);
        conn.sslrootcert = rootcert.map(|p| p.display().to_string());
        conn.host = host.into();
        Tool::new("dbconnect")
            .args(["check"])
            .stdin(profile_for(&pg, "dev", &conn))
            .run()
    };
    let own_ca = pg.ca_cert.clone().unwrap();
    check(SslMode::Require, None, "127.0.0.1").expect(0);
    check(SslMode::Require, Some(&own_ca), "127.0.0.1").expect(0);
    check(SslMode::Require, Some(&other_ca), "127.0.0.1").expect_error(
        "dbconnect",
        4,
        "the server's certificate is not signed by a CA in",
    );
    // A host name the certificate does not carry is said as such, not as a CA problem.
    check(SslMode::VerifyFull, Some(&own_ca), "127.0.0.2").expect_error(
        "dbconnect",
        4,
        "the certificate does not name 127.0.0.2",
    );
}

#[test]
fn wait_says_the_deadline_and_the_error_once_and_times_the_connect_that_worked() {
    let conn = dbtools::contract::Conn {
        host: "127.0.0.1".into(),
        port: harness::closed_port(),
        dbname: "postgres".into(),
        user: "postgres".into(),
        password: None,
        sslmode: SslMode::Disable,
        sslrootcert: None,
    };
    let profile = serde_json::json!({
        "kind": "dbtools.profile/v2", "env": "dev", "protection": "open", "conn": conn,
        "secret": {"source": "env", "ref": "PGPASSWORD"},
    })
    .to_string();
    let run = Tool::new("dbconnect")
        .args(["wait", "--timeout", "1"])
        .stdin(profile)
        .run();
    run.expect(4);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("waiting for"))
        .collect();
    assert!(lines.len() >= 2, "{}", run.stderr);
    assert!(
        lines[0].contains(" of 1s (cannot connect to"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with(" of 1s (the same error)"),
        "{}",
        lines[1]
    );

    let pg = stamped_cluster();
    let witness = Tool::new("dbconnect")
        .args(["wait"])
        .stdin(profile_for(&pg, "dev", &pg.conn(SslMode::VerifyFull)))
        .run();
    assert!(witness.expect(0).json()["connect_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn no_silent_success_for_a_missing_seeds_dir_or_a_misnamed_file() {
    let pg = stamped_cluster();
    let profile = profile_for(&pg, "dev", &pg.conn(SslMode::VerifyFull));
    let missing = Tool::new("dbseed")
        .args(["status", "--dir", "/nonexistent/seedz"])
        .stdin(profile.clone())
        .run();
    missing.expect_error("dbseed", 2, "cannot read seeds dir /nonexistent/seedz");
    let dir = TempDir::new("seeds");
    std::fs::create_dir_all(dir.path.join("common")).unwrap();
    std::fs::write(dir.path.join("common/010_a.SQL"), "select 1;").unwrap();
    let status = Tool::new("dbseed")
        .args(["status"])
        .arg_path_flag("--dir", &dir.path)
        .stdin(profile.clone())
        .run();
    status.expect(0);
    assert!(
        status
            .stderr
            .contains("skipped common/010_a.SQL: seed files end in .sql or .csv, in lower case"),
        "{}",
        status.stderr
    );
    // A seed that is a link out of the seeds' project is refused, not read.
    #[cfg(unix)]
    {
        let outside = TempDir::new("outside-seed");
        std::fs::write(outside.path.join("x.sql"), "select 'TOP-SECRET';").unwrap();
        std::os::unix::fs::symlink(
            outside.path.join("x.sql"),
            dir.path.join("common/020_x.sql"),
        )
        .unwrap();
        let refused = Tool::new("dbseed")
            .args(["status"])
            .arg_path_flag("--dir", &dir.path)
            .stdin(profile)
            .run();
        refused.expect_error("dbseed", 2, "outside the project");
        assert!(!refused.stderr.contains("TOP-SECRET"));
    }
}

#[cfg(unix)]
#[test]
fn links_are_followed_inside_the_project_and_refused_out_of_it() {
    let pg = stamped_cluster();
    let profile = profile_for(&pg, "dev", &pg.conn(SslMode::VerifyFull));
    let project = TempDir::new("linked-project");
    let outside = TempDir::new("outside");
    std::fs::write(project.path.join("dbtools.toml"), "").unwrap();
    let migrations = project.path.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        project.path.join("kept.sql"),
        "-- migrate:up\ncreate table kept (id int);\n-- migrate:down\ndrop table kept;\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(project.path.join("kept.sql"), migrations.join("1_kept.sql"))
        .unwrap();
    std::fs::create_dir_all(migrations.join("2_dir.sql")).unwrap();
    let status = |args: &[&str]| {
        Tool::new("dbmigrate")
            .arg_path_flag("--dir", &migrations)
            .args(args)
            .stdin(profile.clone())
            .run()
    };
    let run = status(&["status"]);
    assert_eq!(
        run.expect(0).json()["pending"],
        1,
        "the link inside is read"
    );
    assert!(
        run.stderr
            .contains("2_dir.sql: not a file (a migration is a .sql file)"),
        "{}",
        run.stderr
    );

    std::fs::write(
        outside.path.join("secret.sql"),
        "-- migrate:up\nselect 'TOP-SECRET';\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        outside.path.join("secret.sql"),
        migrations.join("3_out.sql"),
    )
    .unwrap();
    let refused = status(&["status"]);
    refused.expect_error("dbmigrate", 2, "outside the project");
    assert!(!refused.stderr.contains("TOP-SECRET") && !refused.stdout.contains("TOP-SECRET"));
    std::fs::remove_file(migrations.join("3_out.sql")).unwrap();

    // dump --file: a link out of the project is not written through.
    let target = outside.path.join("victim.txt");
    std::fs::write(&target, "keep me").unwrap();
    std::os::unix::fs::symlink(&target, project.path.join("schema.sql")).unwrap();
    let dump = Tool::new("dbmigrate")
        .arg_path_flag("--dir", &migrations)
        .args(["dump", "--file"])
        .arg_path(&project.path.join("schema.sql"))
        .stdin(profile.clone())
        .run();
    dump.expect_error("dbmigrate", 2, "outside the project");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");

    // A migrations dir that is itself a link to another tree belongs to this project: what
    // it leads to is outside, so it is refused too.
    let elsewhere = outside.path.join("migrations");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(
        elsewhere.join("1_x.sql"),
        "-- migrate:up\nselect 'TOP-SECRET';\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&elsewhere, project.path.join("linked")).unwrap();
    Tool::new("dbmigrate")
        .arg_path_flag("--dir", &project.path.join("linked"))
        .args(["status"])
        .stdin(profile.clone())
        .run()
        .expect_error("dbmigrate", 2, "outside the project");
}

#[test]
fn a_terminal_hears_each_thing_once() {
    let project = Project::local_dev_test();
    // Where each env lives is known once its instance is.
    let before = project.tool("dbenv").args(["list"]).run();
    assert_eq!(
        before.expect(0).json()["envs"][0]["address"],
        serde_json::Value::Null
    );
    let apply = project.tool("rdsprov").args(["apply"]).run_on_terminal();
    apply.expect(0);
    assert!(
        apply
            .stdout
            .contains("creating instance combine-dev (initdb, a TLS certificate, the first start"),
        "{}",
        apply.stdout
    );
    assert_eq!(
        apply.stdout.matches("created instance combine-dev").count(),
        1,
        "{}",
        apply.stdout
    );
    let listed = project.tool("dbenv").args(["list"]).run_on_terminal();
    assert!(
        listed.stdout.contains("WHERE") && listed.stdout.contains("127.0.0.1:"),
        "{}",
        listed.stdout
    );

    std::fs::create_dir_all(project.path().join("migrations")).unwrap();
    let up = project
        .tool("dbmigrate")
        .args(["up", "--env", "dev"])
        .run_on_terminal();
    up.expect(0);
    assert_eq!(
        up.stdout.trim(),
        "dbmigrate: env dev: nothing to apply",
        "{}",
        up.stdout
    );
    std::fs::write(
        project.path().join("migrations/1_t.sql"),
        "-- migrate:up\ncreate table t (id int primary key);\n-- migrate:down\ndrop table t;\n",
    )
    .unwrap();
    project
        .tool("dbmigrate")
        .args(["up", "--env", "dev"])
        .run()
        .expect(0);
    let verify = project
        .tool("dbmigrate")
        .args(["verify", "--env", "dev"])
        .run_on_terminal();
    verify.expect(0);
    assert!(
        verify.stdout.contains("verified 1 migration(s) on dev")
            && !verify.stdout.contains("applied"),
        "{}",
        verify.stdout
    );
    let dump = project
        .tool("dbmigrate")
        .args(["dump", "--env", "dev"])
        .run_on_terminal();
    dump.expect(0);
    assert_eq!(
        dump.stdout.trim(),
        format!(
            "dbmigrate: wrote {} (1 applied versions)",
            project.path().join("db/schema.sql").display()
        ),
        "{}",
        dump.stdout
    );

    std::fs::create_dir_all(project.path().join("seeds/common")).unwrap();
    std::fs::write(
        project.path().join("seeds/common/010_one.sql"),
        "insert into t values (1) on conflict do nothing;\n",
    )
    .unwrap();
    let seeded = project.tool("dbseed").args(["apply", "--env", "dev"]).run();
    seeded.expect(0);
    assert!(
        seeded.stderr.contains("applied common/010_one.sql (1 row)"),
        "{}",
        seeded.stderr
    );
    let seed = project
        .tool("dbseed")
        .args(["apply", "--env", "dev"])
        .run_on_terminal();
    seed.expect(0);
    assert_eq!(
        seed.stdout.trim(),
        "dbseed: env dev: nothing to seed",
        "{}",
        seed.stdout
    );

    // A stopped local instance: the error says how to start it.
    project
        .tool("rdsprov")
        .args(["stop", "--env", "dev"])
        .run()
        .expect(0);
    project
        .tool("dbconnect")
        .args(["check", "--env", "dev"])
        .run()
        .expect_error(
            "dbconnect",
            4,
            "`rdsprov start --env dev` starts it when stopped",
        );
    let destroyed = project
        .tool("rdsprov")
        .args(["destroy", "--env", "dev"])
        .run();
    destroyed.expect(0);
    assert!(
        destroyed
            .stderr
            .contains("destroying instance combine-dev (stopping its server"),
        "{}",
        destroyed.stderr
    );
}

#[test]
fn errors_say_where_the_settings_came_from() {
    // A refused password names its source, not a tool that did not write it.
    let pg = stamped_cluster();
    let refused = Tool::new("dbconnect")
        .args(["check"])
        .env("PGPASSWORD", "not-the-password")
        .stdin(profile_for(&pg, "dev", &pg.conn(SslMode::VerifyFull)))
        .run();
    refused.expect_error("dbconnect", 4, "the password came from $PGPASSWORD");
    assert!(!refused.stderr.contains("rdsprov"), "{}", refused.stderr);
    // An AWS env whose endpoint is not imported yet points at `dbenv import`.
    let project = Project::new(
        "[env.prod]\ninstance = \"combine-prod\"\ndatabase = \"combine\"\nuser = \"combine_app\"\n[instance.combine-prod]\nprovider = \"aws\"\nregion = \"eu-west-1\"\n",
    );
    project
        .tool("dbenv")
        .args(["resolve", "prod"])
        .run()
        .expect_error("dbenv", 2, "| dbenv import` writes it");
    // --generate is in every tool's help.
    for tool in [
        "dbenv",
        "dbconnect",
        "dbmigrate",
        "dbseed",
        "dbguard",
        "rdsprov",
    ] {
        let help = Tool::new(tool).args(["--help"]).run();
        assert!(
            help.expect(0).stdout.contains("--generate <KIND>"),
            "{tool}"
        );
    }
}

#[test]
fn psql_s_prompt_names_the_env_and_its_protection() {
    let pg = stamped_cluster();
    let mut profile: serde_json::Value =
        serde_json::from_str(&profile_for(&pg, "test", &pg.conn(SslMode::VerifyFull))).unwrap();
    profile["protection"] = "confirm".into();
    let home = TempDir::new("home");
    std::fs::write(home.path.join(".psqlrc"), "\\set dbtools_users_own yes\n").unwrap();
    let run = Tool::new("dbconnect")
        .args([
            "psql",
            "--",
            "-At",
            "-c",
            "\\echo :PROMPT1 :dbtools_users_own",
        ])
        .env("HOME", &home.path)
        .stdin(profile.to_string())
        .run();
    run.expect(0);
    // The user's own startup file ran first; the prompt is ours.
    assert_eq!(
        run.stdout.trim(),
        "test(confirm) %/%R%#  yes",
        "{}",
        run.stderr
    );
}

#[test]
fn make_up_installs_only_what_the_tools_need() {
    // What `make up` and `make test` would run, without running it.
    let dry = |target: &str| {
        let run = Tool::program("make")
            .args(["-n", "-C"])
            .arg_path(&harness::repo_root())
            .args([target])
            .run();
        run.expect(0);
        run.stdout
    };
    let up = dry("up");
    assert!(
        up.contains("scripts/setup.sh") && !up.contains("setup-test.sh"),
        "{up}"
    );
    let test = dry("test");
    assert!(test.contains("scripts/setup-test.sh"), "{test}");
    let tools = std::fs::read_to_string(harness::repo_root().join("scripts/setup.sh")).unwrap();
    for only_for_tests in [
        "moto",
        "tree-sitter",
        "cargo-fuzz",
        "npm",
        "strace",
        "nightly",
    ] {
        assert!(
            !tools.contains(only_for_tests),
            "setup.sh installs {only_for_tests}"
        );
    }
}

/// doctor at a port that accepts TCP and then says nothing: the TLS step fails with a fix
/// that names what to check, not "see what was found".
#[test]
fn doctor_at_a_silent_port_names_what_to_check() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let profile = format!(
        r#"{{"kind":"dbtools.profile/v2","env":"dev","protection":"open","conn":{{"host":"127.0.0.1","port":{port},"dbname":"d","user":"u","sslmode":"verify-full"}}}}"#
    );
    let run = Tool::new("dbconnect")
        .args(["doctor", "--timeout", "1"])
        .stdin(profile)
        .run();
    assert_eq!(run.code, 4, "{}", run.stderr);
    let report = run.json();
    let tls = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "tls")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(tls["outcome"], "failed");
    let fix = tls["fix"].as_str().unwrap();
    assert!(
        fix.contains("answers TCP but not PostgreSQL's TLS request")
            && !fix.contains("see what was found"),
        "{fix}"
    );
    drop(silent);
}
