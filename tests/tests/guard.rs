//! The guard end to end: the whole verdict matrix — {read, write, destructive} × {open,
//! confirm, locked} × {stamp matches, differs, unstamped} × {confirm right, wrong, absent, right
//! with break-glass} — through `dbguard check` on a real cluster; stamping and re-stamping; a
//! DEV profile aimed at TEST's database refused by `dbmigrate`; the audit (local log and
//! database); the lint, alone and inside `dbmigrate up`.

use dbtools::contract::SslMode;
use harness::{PgCluster, Project, Tls, Tool};

/// Four envs on one cluster, each its own database; `other` is the "wrong" stamp.
fn project(pg: &PgCluster) -> Project {
    let config = pg.envs_config(&[
        ("dev", "open"),
        ("test", "confirm"),
        ("prod", "locked"),
        ("other", "confirm"),
    ]);
    Project::new(&format!("app = \"guarded\"\n{config}"))
}

/// A profile for `env` pointing at database `db` (possibly another env's).
fn profile(pg: &PgCluster, env: &str, db: &str) -> String {
    let mut conn = pg.conn(SslMode::Disable);
    conn.dbname = db.into();
    pg.profile(env, &conn)
}

#[derive(Clone, Copy, Debug)]
enum Stamped {
    Matches,
    Differs,
    Unstamped,
}

#[derive(Clone, Copy, Debug)]
enum Typed {
    Right,
    Wrong,
    Absent,
    RightWithBreakGlass,
}

/// The verdict the guard must give: `None` to allow, else a phrase of the refusal.
fn expected(class: &str, env: &str, stamped: Stamped, typed: Typed) -> Option<String> {
    if class == "read" {
        return None;
    }
    if class == "destructive" && env != "dev" {
        match typed {
            Typed::Absent => return Some(format!("add --confirm {env}")),
            Typed::Wrong => return Some(format!("type --confirm {env} exactly")),
            Typed::Right if env == "prod" => return Some("add --break-glass".into()),
            _ => {}
        }
    }
    match stamped {
        Stamped::Matches => None,
        Stamped::Differs => Some("is stamped other: refusing to write".into()),
        Stamped::Unstamped => Some("has no env stamp, so writes are refused".into()),
    }
}

#[test]
fn the_whole_verdict_matrix() {
    let pg = PgCluster::start(Tls::None);
    let project = project(&pg);
    for db in ["db_dev", "db_test", "db_prod", "db_other", "db_none"] {
        pg.psql("postgres", &format!("create database {db}"));
    }
    for env in ["dev", "test", "prod", "other"] {
        pg.stamp(&format!("db_{env}"), env);
    }
    let mut refused = 0;
    let mut allowed_destructive = 0;
    for class in ["read", "write", "destructive"] {
        for env in ["dev", "test", "prod"] {
            for stamped in [Stamped::Matches, Stamped::Differs, Stamped::Unstamped] {
                for typed in [
                    Typed::Right,
                    Typed::Wrong,
                    Typed::Absent,
                    Typed::RightWithBreakGlass,
                ] {
                    let db = match stamped {
                        Stamped::Matches => format!("db_{env}"),
                        Stamped::Differs => "db_other".into(),
                        Stamped::Unstamped => "db_none".into(),
                    };
                    let mut args = vec!["check", "--action", class];
                    let upper = env.to_uppercase();
                    match typed {
                        Typed::Right => args.extend(["--confirm", env]),
                        Typed::Wrong => args.extend(["--confirm", &upper]),
                        Typed::Absent => {}
                        Typed::RightWithBreakGlass => {
                            args.extend(["--confirm", env, "--break-glass", "incident 7"])
                        }
                    }
                    let run = project
                        .tool("dbguard")
                        .args(&args)
                        .stdin(profile(&pg, env, &db))
                        .run();
                    let cell = format!("{class} × {env} × {stamped:?} × {typed:?}");
                    match expected(class, env, stamped, typed) {
                        None => {
                            assert_eq!(run.code, 0, "{cell}: {}", run.stderr);
                            let verdict = run.json();
                            assert_eq!(verdict["kind"], "dbtools.verdict/v1", "{cell}");
                            assert_eq!(verdict["allowed"], true, "{cell}");
                            assert_eq!(
                                verdict["profile"]["env"], env,
                                "{cell}: the profile passes on"
                            );
                            if class == "destructive" {
                                allowed_destructive += 1;
                            }
                        }
                        Some(phrase) => {
                            assert_eq!(run.code, 3, "{cell}: {}", run.stderr);
                            run.expect_error("dbguard", 3, &phrase);
                            refused += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(
        refused > 40 && allowed_destructive > 0,
        "{refused} {allowed_destructive}"
    );

    // Every refusal and every allowed destructive action is in the local log, once.
    let audit = project
        .tool("dbguard")
        .args(["audit", "--limit", "1000"])
        .run();
    let entries = audit.expect(0).json()["entries"]
        .as_array()
        .unwrap()
        .clone();
    let count = |outcome: &str| entries.iter().filter(|e| e["outcome"] == outcome).count();
    assert_eq!(count("refused"), refused);
    assert_eq!(count("allowed"), allowed_destructive);
    let sample = entries
        .iter()
        .find(|e| e["outcome"] == "refused" && e["env"] == "test")
        .unwrap();
    assert!(sample["by"].as_str().unwrap().contains('@'));
    assert_eq!(sample["tool"], "dbguard");
    assert!(sample["target"].as_str().unwrap().starts_with("127.0.0.1:"));
    // …and in the database the action was aimed at, when it answered.
    let in_db = pg.psql(
        "db_test",
        "select count(*) from dbtools.audit where env = 'test' and outcome = 'refused'",
    );
    assert!(in_db.parse::<usize>().unwrap() > 0, "{in_db}");
    let listed = project
        .tool("dbguard")
        .args(["audit", "--database"])
        .stdin(profile(&pg, "test", "db_test"))
        .run();
    assert_eq!(listed.expect(0).json()["source"], "database");
}

#[test]
fn confirmation_from_the_environment_and_break_glass_reason_in_the_audit() {
    let pg = PgCluster::start(Tls::None);
    let project = project(&pg);
    pg.psql("postgres", "create database db_prod");
    pg.stamp("db_prod", "prod");
    project
        .tool("dbguard")
        .args(["check", "-a", "truncate", "--break-glass", "restore drill"])
        .env("DBGUARD_CONFIRM", "prod")
        .stdin(profile(&pg, "prod", "db_prod"))
        .run()
        .expect(0);
    let entries = project
        .tool("dbguard")
        .args(["audit", "--env", "prod"])
        .run();
    let list = entries.expect(0).json();
    let last = list["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["outcome"], "allowed");
    assert_eq!(last["reason"], "restore drill");
    assert_eq!(last["action"], "truncate");
}

#[test]
fn re_stamping_is_destructive_and_checked_against_both_envs() {
    let pg = PgCluster::start(Tls::None);
    let project = project(&pg);
    pg.psql("postgres", "create database db_x");
    let stamp = |env: &str, extra: &[&str]| {
        project
            .tool("dbguard")
            .args(["stamp"])
            .args(extra)
            .stdin(profile(&pg, env, "db_x"))
            .run()
    };
    let first = stamp("dev", &[]);
    let result = first.expect(0).json();
    assert_eq!(result["kind"], "dbtools.stamp/v1");
    assert_eq!(result["changed"], true);
    assert!(result["previous"].is_null());
    assert_eq!(result["stamp"]["env"], "dev");
    assert!(
        first.stderr.contains("stamped 127.0.0.1:"),
        "{}",
        first.stderr
    );
    let again = stamp("dev", &[]);
    assert_eq!(again.expect(0).json()["changed"], false);
    // dev → prod: the env that loses the database is dev (open): nothing to type, audited.
    let moved = stamp("prod", &[]);
    assert_eq!(moved.expect(0).json()["previous"], "dev");
    assert_eq!(pg.psql("db_x", "select env from dbtools.env_stamp"), "prod");
    assert_eq!(
        pg.psql("db_x", "select protection from dbtools.env_stamp"),
        "locked"
    );
    // prod → dev: prod loses it, so prod is confirmed (not dev) and glass is broken.
    stamp("dev", &["--confirm", "dev"]).expect_error("dbguard", 3, "type --confirm prod exactly");
    stamp("dev", &["--confirm", "prod"]).expect_error("dbguard", 3, "add --break-glass");
    assert_eq!(pg.psql("db_x", "select env from dbtools.env_stamp"), "prod");
    let back = stamp("dev", &["--confirm", "prod", "--break-glass", "db moved"]);
    assert_eq!(back.expect(0).json()["previous"], "prod");
}

/// The accident the stamp exists for: a DEV profile whose database really is TEST's.
#[test]
fn a_dev_profile_aimed_at_the_test_database_writes_nothing() {
    let project = Project::local_dev_test();
    project.apply();
    let dev: serde_json::Value = serde_json::from_str(&project.profile("dev")).unwrap();
    let mut wrong: serde_json::Value = serde_json::from_str(&project.profile("test")).unwrap();
    wrong["env"] = dev["env"].clone();
    wrong["protection"] = dev["protection"].clone();
    let migrations = harness::TempDir::new("m");
    std::fs::write(
        migrations.path.join("1_t.sql"),
        "-- migrate:up\ncreate table t (id int);\n-- migrate:down\ndrop table t;\n",
    )
    .unwrap();
    // Edited as it is, the profile still names TEST's own secret, which goes only to TEST's
    // env: refused before anything connects.
    project
        .tool("dbmigrate")
        .args(["up"])
        .arg_path_flag("--dir", &migrations.path)
        .stdin(wrong.to_string())
        .run()
        .expect_error(
            "dbmigrate",
            2,
            "the profile on stdin names the secret local:combine-test/combine_app, which is not honoured unless it is the one dbtools.toml names for the env",
        );
    // With the password in PGPASSWORD (libpq's own source, honoured), the database decides.
    let secret = std::fs::read_to_string(
        project
            .state()
            .join("secrets/combine-test/combine_app.json"),
    )
    .unwrap();
    let password: serde_json::Value = serde_json::from_str(&secret).unwrap();
    wrong["secret"] = serde_json::json!({"source": "env", "ref": "PGPASSWORD"});
    let run = project
        .tool("dbmigrate")
        .args(["up"])
        .arg_path_flag("--dir", &migrations.path)
        .env("PGPASSWORD", password["password"].as_str().unwrap())
        .stdin(wrong.to_string())
        .run();
    run.expect_error(
        "dbmigrate",
        3,
        "the profile says env dev, but database 127.0.0.1:",
    );
    assert!(
        run.stderr.contains("/combine_test is stamped test"),
        "{}",
        run.stderr
    );
    // Nothing reached the TEST database: not the migration, not even the tracking table.
    let status = project
        .tool("dbmigrate")
        .args(["status"])
        .arg_path_flag("--dir", &migrations.path)
        .stdin(project.profile("test"))
        .run();
    let status = status.expect(0).json();
    assert_eq!(status["pending"], 1);
    let (port, secret) = (
        wrong["conn"]["port"].as_u64().unwrap(),
        password["password"].as_str().unwrap(),
    );
    let tables = Tool::program("psql")
        .args([
            "-XAtq",
            "-c",
            "select count(*) from pg_tables where tablename in ('t', 'schema_migrations')",
        ])
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", port.to_string())
        .env("PGUSER", "combine_app")
        .env("PGDATABASE", "combine_test")
        .env("PGSSLMODE", "require")
        .env("PGPASSWORD", secret)
        .run();
    assert_eq!(
        tables.expect(0).stdout.trim(),
        "0",
        "no table t, no schema_migrations"
    );
    // The TEST database recorded the attempt.
    let audit = project
        .tool("dbguard")
        .args(["audit", "--database", "--env", "test"])
        .run();
    let entries = audit.expect(0).json()["entries"].clone();
    assert!(
        entries
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["env"] == "dev" && e["outcome"] == "refused" && e["tool"] == "dbmigrate"),
        "{entries}"
    );
}

#[test]
fn an_unstamped_database_refuses_migrations_until_stamped() {
    let pg = PgCluster::start(Tls::None);
    let migrations = harness::TempDir::new("m");
    std::fs::write(
        migrations.path.join("1_t.sql"),
        "-- migrate:up\ncreate table t (id int);\n-- migrate:down\ndrop table t;\n",
    )
    .unwrap();
    let up = || {
        Tool::new("dbmigrate")
            .args(["up"])
            .arg_path_flag("--dir", &migrations.path)
            .stdin(profile(&pg, "dev", "postgres"))
            .run()
    };
    up().expect_error("dbmigrate", 3, "run `dbguard stamp dev`");
    assert_eq!(
        pg.psql(
            "postgres",
            "select to_regclass('schema_migrations') is null"
        ),
        "t"
    );
    pg.stamp("postgres", "dev");
    up().expect(0);
}

const RISKY: &str = "-- migrate:up\nalter table posts drop column legacy;\ndelete from sessions;\n-- migrate:down\nalter table posts add column legacy text;\n";

#[test]
fn lint_reports_findings_with_lines_and_honours_opt_ins() {
    let dir = harness::TempDir::new("lint");
    let risky = dir.path.join("20260101000001_risky.sql");
    std::fs::write(&risky, RISKY).unwrap();
    let run = Tool::new("dbguard").args(["lint"]).arg_path(&risky).run();
    let report = run.expect(1).json();
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2, "down sections are not linted: {report}");
    assert_eq!(findings[0]["rule"], "drop-column");
    assert_eq!(findings[0]["line"], 2);
    assert_eq!(findings[1]["rule"], "delete-without-where");
    assert_eq!(findings[1]["line"], 3);
    assert!(
        run.stderr
            .starts_with("dbguard: 2 finding(s) need an opt-in"),
        "{}",
        run.stderr
    );

    // On an open env the same findings are warnings.
    let dev = Tool::new("dbguard")
        .args(["lint", "--env", "dev"])
        .arg_path(&risky)
        .run();
    assert_eq!(dev.expect(0).json()["enforced"], false);

    let allowed = dir.path.join("20260101000002_allowed.sql");
    std::fs::write(
        &allowed,
        format!(
            "-- dbguard:allow drop-column, delete-without-where: sessions are disposable\n{RISKY}"
        ),
    )
    .unwrap();
    let run = Tool::new("dbguard").args(["lint"]).arg_path(&allowed).run();
    let report = run.expect(0).json();
    assert!(report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["allowed"] == true));

    let typo = dir.path.join("typo.sql");
    std::fs::write(&typo, "-- dbguard:allow drop-colum\nselect 1;\n").unwrap();
    Tool::new("dbguard")
        .args(["lint"])
        .arg_path(&typo)
        .run()
        .expect_error(
            "dbguard",
            2,
            "typo.sql:1: dbguard:allow names unknown rule \"drop-colum\"",
        );

    let broken = dir.path.join("broken.sql");
    std::fs::write(&broken, "select 1;\n\ninsert into t values (1;\n").unwrap();
    Tool::new("dbguard")
        .args(["lint"])
        .arg_path(&broken)
        .run()
        .expect_error("dbguard", 2, "broken.sql:3: syntax error");
}

#[test]
fn migrate_up_lints_pending_files_before_applying_them() {
    let pg = PgCluster::start(Tls::None);
    let project = project(&pg);
    pg.psql("postgres", "create database db_test");
    pg.psql("postgres", "create database db_dev");
    pg.stamp("db_test", "test");
    pg.stamp("db_dev", "dev");
    let dir = harness::TempDir::new("m");
    std::fs::write(
        dir.path.join("1_base.sql"),
        "-- migrate:up\ncreate table posts (id int, legacy text);\ncreate table sessions (id int);\n-- migrate:down\ndrop table posts, sessions;\n",
    )
    .unwrap();
    std::fs::write(dir.path.join("2_risky.sql"), RISKY).unwrap();
    let up = |env: &str| {
        project
            .tool("dbmigrate")
            .args(["up"])
            .arg_path_flag("--dir", &dir.path)
            .stdin(profile(&pg, env, &format!("db_{env}")))
            .run()
    };
    // On test (confirm): refused before anything runs, naming file, line and rule.
    up("test").expect_error("dbmigrate", 3, "2_risky.sql:2: drop-column");
    assert_eq!(
        pg.psql("db_test", "select to_regclass('posts') is null"),
        "t",
        "nothing was applied, not even the harmless first migration"
    );
    // On dev (open): warnings, then applied.
    let dev = up("dev");
    dev.expect(0);
    assert!(
        dev.stderr.contains("dbmigrate: warning: ")
            && dev.stderr.contains("2_risky.sql:3: delete-without-where"),
        "{}",
        dev.stderr
    );
    // With the opt-in, test applies it too.
    std::fs::write(
        dir.path.join("2_risky.sql"),
        format!("-- dbguard:allow drop-column, delete-without-where: legacy is unused since v2\n{RISKY}"),
    )
    .unwrap();
    up("test").expect(0);
}
