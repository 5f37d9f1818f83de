//! dbmigrate end to end on throwaway clusters: the batch (each migration its own transaction),
//! errors mapped to file and line, framing refusals, checksums across Windows and Linux
//! checkouts, drift, down, the lock, and interoperability with the real dbmate.

use dbtools::contract::SslMode;
use harness::{PgCluster, TempDir, Tls, Tool};

struct Db {
    pg: PgCluster,
    dir: TempDir,
}

impl Db {
    fn new() -> Db {
        let pg = PgCluster::start(Tls::Offered);
        pg.stamp("postgres", "dev");
        Db {
            pg,
            dir: TempDir::new("migrations"),
        }
    }

    fn profile(&self, protection: &str) -> String {
        let mut value: serde_json::Value =
            serde_json::from_str(&self.pg.profile("dev", &self.pg.conn(SslMode::VerifyFull)))
                .unwrap();
        value["protection"] = protection.into();
        value.to_string()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path.join(name), text).unwrap();
    }

    fn migrate(&self, args: &[&str]) -> harness::Run {
        self.migrate_as("open", args)
    }

    fn migrate_as(&self, protection: &str, args: &[&str]) -> harness::Run {
        Tool::new("dbmigrate")
            .arg_path_flag("--dir", &self.dir.path)
            .args(args)
            .stdin(self.profile(protection))
            .run()
    }

    fn psql(&self, sql: &str) -> String {
        self.pg.psql("postgres", sql)
    }

    fn applied(&self) -> Vec<String> {
        if self.psql("select to_regclass('schema_migrations') is null") == "t" {
            return Vec::new();
        }
        self.psql("select coalesce(string_agg(version, ',' order by version::numeric), '') from schema_migrations")
            .split(',')
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }
}

fn table_migration(n: usize) -> String {
    format!("-- migrate:up\ncreate table t{n} (id int primary key, note text);\ncreate index t{n}_note on t{n} (note);\n-- migrate:down\ndrop table t{n};\n")
}

#[test]
fn up_status_down_and_the_profile_flows_on() {
    let db = Db::new();
    for n in 1..=3 {
        db.write(&format!("{n}_t{n}.sql"), &table_migration(n));
    }
    let status = db.migrate(&["status", "--exit-code"]);
    status.expect(1);
    assert_eq!(status.json()["pending"], 3);

    let up = db.migrate(&["up"]);
    let result = up.expect(0).json();
    assert_eq!(result["kind"], "dbtools.migrate.result/v1");
    assert_eq!(result["migrations"].as_array().unwrap().len(), 3);
    // One message: the first COMMITs are asynchronous ("committed"); the last one's flush
    // makes all three durable ("applied").
    assert!(up.stderr.contains("committed 1_t1.sql ("), "{}", up.stderr);
    assert!(up.stderr.contains("applied 3_t3.sql ("), "{}", up.stderr);
    assert_eq!(db.applied(), ["1", "2", "3"]);
    let row = db.psql("select checksum is not null, applied_by like '%@%', duration_ms >= 0 from schema_migrations where version = '2'");
    assert_eq!(row, "t|t|t");

    // The result carries the profile on: dbmigrate up | dbconnect check.
    let witness = Tool::new("dbconnect")
        .args(["check"])
        .stdin(up.stdout.clone())
        .run()
        .expect(0)
        .json();
    assert_eq!(witness["env"], "dev");

    db.migrate(&["status", "--exit-code"]).expect(0);
    let again = db.migrate(&["up"]);
    assert!(again.expect(0).stderr.contains("nothing to apply"));

    let down = db.migrate(&["down", "2"]);
    assert!(
        down.expect(0).stderr.contains("reverted 3_t3.sql"),
        "{}",
        down.stderr
    );
    assert_eq!(db.applied(), ["1"]);
    assert_eq!(
        db.psql("select count(*) from pg_tables where tablename in ('t2', 't3')"),
        "0"
    );
}

#[test]
fn a_failure_in_migration_5_of_10_keeps_1_to_4_and_names_file_and_line() {
    let db = Db::new();
    for n in 1..=10 {
        let text = if n == 5 {
            "-- migrate:up\ncreate table t5 (id int);\ninsert into t5 values (1);\nselect * from no_such_table;\n-- migrate:down\ndrop table t5;\n".to_string()
        } else {
            table_migration(n)
        };
        db.write(&format!("{n:02}_m.sql"), &text);
    }
    let run = db.migrate(&["up"]);
    run.expect_error(
        "dbmigrate",
        5,
        "05_m.sql:4: relation \"no_such_table\" does not exist",
    );
    assert!(
        run.stderr
            .contains("4 applied before it in this run, 5 not run"),
        "{}",
        run.stderr
    );
    assert_eq!(db.applied(), ["01", "02", "03", "04"]);
    assert_eq!(
        db.psql("select count(*) from pg_tables where tablename = 't5'"),
        "0",
        "migration 5 rolled back"
    );
    assert_eq!(
        db.psql("select count(*) from pg_tables where tablename in ('t6','t7','t8','t9','t10')"),
        "0"
    );
}

#[test]
fn a_syntax_error_maps_to_its_line() {
    let db = Db::new();
    db.write("1_ok.sql", &table_migration(1));
    db.write(
        "2_typo.sql",
        "-- migrate:up\n\ncreate table t2 (id int);\nCRATE TABLE t3 (id int);\n-- migrate:down\n",
    );
    let run = db.migrate(&["up"]);
    // PostgreSQL's own parser (pg_query) reads every pending file before anything is sent.
    run.expect_error(
        "dbmigrate",
        2,
        "2_typo.sql:4: syntax error at or near \"CRATE\"",
    );
    assert!(
        run.stderr.contains("nothing in this run was applied"),
        "{}",
        run.stderr
    );
    assert!(db.applied().is_empty());
    // Syntax newer than the server passes our parser and fails in the server's, which parses a
    // whole message before running any of it: nothing applied.
    if let Some(newer) = syntax_newer_than(&db) {
        db.write(
            "2_typo.sql",
            &format!("-- migrate:up\n\ncreate table t2 (id int);\n{newer}\n-- migrate:down\n"),
        );
        let run = db.migrate(&["up"]);
        run.expect_error("dbmigrate", 5, "2_typo.sql:4: syntax error");
        assert!(
            run.stderr.contains("nothing in this run was applied"),
            "{}",
            run.stderr
        );
        assert!(db.applied().is_empty());
    }
    db.write(
        "2_typo.sql",
        "-- migrate:up\n\ncreate table t2 (id int);\n-- migrate:down\n",
    );
    db.migrate(&["up"]).expect(0);
    assert_eq!(db.applied(), ["1", "2"]);
}

#[test]
fn transaction_control_in_a_transactional_migration_is_refused_before_anything_runs() {
    let db = Db::new();
    db.write("1_ok.sql", &table_migration(1));
    db.write(
        "2_commit.sql",
        "-- migrate:up\ncreate table t2 (id int);\nCOMMIT;\n-- migrate:down\n",
    );
    db.migrate(&["up"])
        .expect_error("dbmigrate", 2, "2_commit.sql:3: transaction control");
    db.write(
        "2_commit.sql",
        "-- migrate:up\ncreate index concurrently i1 on t1 (id);\n-- migrate:down\n",
    );
    db.migrate(&["up"]).expect_error(
        "dbmigrate",
        2,
        "put it in a section marked `-- migrate:up transaction:false`",
    );
    assert_eq!(
        db.psql("select count(*) from pg_tables where tablename = 't1'"),
        "0",
        "nothing was sent"
    );
}

#[test]
fn transaction_false_sections_run_statement_by_statement_and_record_only_on_success() {
    let db = Db::new();
    db.write("1_t.sql", &table_migration(1));
    db.write(
        "2_idx.sql",
        "-- migrate:up transaction:false\ncreate index concurrently t1_id2 on t1 (id);\n-- a comment; with a semicolon\ncreate index concurrently t1_note2 on t1 (note);\n-- migrate:down transaction:false\ndrop index concurrently t1_note2;\ndrop index concurrently t1_id2;\n",
    );
    db.write("3_t.sql", &table_migration(3));
    db.migrate(&["up"]).expect(0);
    assert_eq!(db.applied(), ["1", "2", "3"]);
    assert_eq!(
        db.psql("select count(*) from pg_indexes where indexname in ('t1_id2', 't1_note2')"),
        "2"
    );
    db.migrate(&["down", "2"]).expect(0);
    assert_eq!(
        db.psql("select count(*) from pg_indexes where indexname in ('t1_id2', 't1_note2')"),
        "0"
    );

    db.write("4_bad.sql", "-- migrate:up transaction:false\ncreate index concurrently t1_x on t1 (id);\ncreate index concurrently t1_y on no_table (id);\n-- migrate:down\n");
    db.migrate(&["up"]).expect_error(
        "dbmigrate",
        5,
        "4_bad.sql:3: relation \"no_table\" does not exist",
    );
    assert!(
        !db.applied().contains(&"4".to_string()),
        "a failed transaction:false migration is not recorded"
    );
}

#[test]
fn atomic_is_all_or_nothing() {
    let db = Db::new();
    db.write("1_a.sql", &table_migration(1));
    db.write("2_b.sql", "-- migrate:up\nselect 1/0;\n-- migrate:down\n");
    db.migrate(&["up", "--atomic"])
        .expect_error("dbmigrate", 5, "division by zero");
    assert!(db.applied().is_empty());
    assert_eq!(
        db.psql("select count(*) from pg_tables where tablename = 't1'"),
        "0"
    );
}

#[test]
fn dry_run_and_to_write_nothing_beyond_what_they_say() {
    let db = Db::new();
    for n in 1..=3 {
        db.write(&format!("{n}_t.sql"), &table_migration(n));
    }
    let dry = db.migrate(&["up", "--dry-run"]).expect(0).json();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["migrations"].as_array().unwrap().len(), 3);
    assert_eq!(
        db.psql("select count(*) from pg_tables where tablename = 'schema_migrations'"),
        "0"
    );
    db.migrate(&["up", "--to", "2"]).expect(0);
    assert_eq!(db.applied(), ["1", "2"]);
    db.migrate(&["up", "--to", "9"]).expect_error(
        "dbmigrate",
        2,
        "--to 9: no migration file has that version",
    );
}

#[test]
fn windows_checkouts_are_unchanged_but_real_edits_are_drift() {
    let db = Db::new();
    let text = "-- migrate:up\ncreate table t1 (id int, label text default 'a  b');\n-- migrate:down\ndrop table t1;\n";
    db.write("1_t.sql", text);
    db.migrate(&["up"]).expect(0);
    // The same file as a Windows checkout: CRLF and a byte-order mark.
    let windows = format!("\u{feff}{}", text.replace('\n', "\r\n"));
    db.write("1_t.sql", &windows);
    assert_eq!(
        db.migrate(&["status", "--exit-code"]).expect(0).json()["changed"],
        0
    );
    // One space less inside a string literal is a change.
    db.write("1_t.sql", &text.replace("'a  b'", "'a b'"));
    let status = db.migrate(&["status", "--exit-code"]);
    assert_eq!(status.expect(1).json()["changed"], 1);
    db.write("2_t.sql", &table_migration(2));
    db.migrate(&["up"])
        .expect_error("dbmigrate", 2, "was edited after it was applied");
    assert_eq!(db.applied(), ["1"]);
    db.migrate(&["accept", "1"]).expect(0);
    db.migrate(&["up"]).expect(0);
    assert_eq!(db.applied(), ["1", "2"]);
    // A recorded version without a file is reported, not ignored.
    std::fs::remove_file(db.dir.path.join("2_t.sql")).unwrap();
    assert_eq!(db.migrate(&["status"]).expect(0).json()["missing"], 1);
}

#[test]
fn bad_files_are_named_and_nothing_runs() {
    let db = Db::new();
    db.write("1_t.sql", &table_migration(1));
    db.write("01_dup.sql", &table_migration(2));
    db.migrate(&["up"])
        .expect_error("dbmigrate", 2, "duplicate version");
    std::fs::remove_file(db.dir.path.join("01_dup.sql")).unwrap();
    let mut utf16 = vec![0xFF, 0xFE];
    for unit in table_migration(3).encode_utf16() {
        utf16.extend(unit.to_le_bytes());
    }
    std::fs::write(db.dir.path.join("3_wide.sql"), utf16).unwrap();
    db.migrate(&["up"])
        .expect_error("dbmigrate", 2, "3_wide.sql is saved as UTF-16");
    std::fs::remove_file(db.dir.path.join("3_wide.sql")).unwrap();
    db.write("x_name.sql", &table_migration(4));
    db.migrate(&["up"])
        .expect_error("dbmigrate", 2, "must start with a numeric version");
    std::fs::remove_file(db.dir.path.join("x_name.sql")).unwrap();
    db.write("5_nomarker.sql", "create table t5 (id int);\n");
    db.migrate(&["up"])
        .expect_error("dbmigrate", 2, "no `-- migrate:up` line");
    assert_eq!(
        db.psql("select count(*) from pg_tables where tablename = 'schema_migrations'"),
        "0"
    );
}

#[test]
fn down_is_guarded_and_refuses_an_empty_down() {
    let db = Db::new();
    db.write(
        "1_t.sql",
        "-- migrate:up\ncreate table t1 (id int);\n-- migrate:down\n",
    );
    db.migrate(&["up"]).expect(0);
    db.migrate_as("confirm", &["down"])
        .expect_error("dbmigrate", 3, "add --confirm dev");
    db.migrate_as("confirm", &["down", "--confirm", "DEV"])
        .expect_error("dbmigrate", 3, "is not the env name");
    db.migrate_as("confirm", &["down", "--confirm", "dev"])
        .expect_error("dbmigrate", 2, "has an empty down section");
    assert_eq!(db.applied(), ["1"]);
}

#[test]
fn a_held_lock_times_out_with_who_holds_it() {
    let db = Db::new();
    db.write("1_t.sql", &table_migration(1));
    let conn = db.pg.conn(SslMode::VerifyFull);
    let mut holder =
        dbtools::pg::connect(&conn, "other-migrator", std::time::Duration::from_secs(5)).unwrap();
    holder
        .simple_query("select pg_advisory_lock(7233464250984980852)")
        .unwrap();
    let run = db.migrate(&["up", "--lock-timeout", "1.5"]);
    run.expect_error(
        "dbmigrate",
        5,
        "another migration holds the migration lock (pid",
    );
    assert!(run.stderr.contains("other-migrator"), "{}", run.stderr);
    // Past a second of waiting, a progress line said what it was waiting for.
    assert!(
        run.stderr.contains(
            "dbmigrate: waiting for the migration lock: another migrator holds it (giving up after 1.5s, --lock-timeout)"
        ),
        "{}",
        run.stderr
    );
    assert!(db.applied().is_empty());
    drop(holder);
    db.migrate(&["up"]).expect(0);
}

/// Two `dbmigrate up` started together on the same database.
fn two_migrators_at_once(db: &Db, profile: &str) -> Vec<harness::Run> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let profile = profile.to_string();
                let dir = db.dir.path.clone();
                scope.spawn(move || {
                    Tool::new("dbmigrate")
                        .arg_path_flag("--dir", &dir)
                        .args(["up"])
                        .stdin(profile)
                        .run()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn two_migrators_at_once_apply_each_migration_once() {
    let db = Db::new();
    for n in 1..=20 {
        db.write(&format!("{n:02}_t.sql"), &format!("-- migrate:up\ncreate table t{n} (id int);\nselect pg_sleep(0.05);\n-- migrate:down\ndrop table t{n};\n"));
    }
    let runs = two_migrators_at_once(&db, &db.profile("open"));
    for run in &runs {
        run.expect(0);
    }
    let applied: usize = runs
        .iter()
        .map(|r| r.json()["migrations"].as_array().unwrap().len())
        .sum();
    assert_eq!(applied, 20, "every migration ran exactly once across both");
    assert_eq!(db.applied().len(), 20);
    assert!(
        runs.iter().any(|r| r.stderr.contains("waited")),
        "the second reports its wait: {:?}",
        runs.iter().map(|r| &r.stderr).collect::<Vec<_>>()
    );
}

/// Twenty rounds of two migrators started together, each round adding five migrations: every
/// round both exit 0 and each migration is applied exactly once between them.
#[test]
fn two_migrators_race_twenty_rounds_without_a_double_apply() {
    let db = Db::new();
    let profile = db.profile("open");
    for round in 1..=20 {
        for n in 1..=5 {
            db.write(
                &format!("{round:02}{n:02}_r.sql"),
                &format!("-- migrate:up\ncreate table r{round}_{n} (id int);\n-- migrate:down\ndrop table r{round}_{n};\n"),
            );
        }
        let runs = two_migrators_at_once(&db, &profile);
        let applied: usize = runs
            .iter()
            .map(|r| r.expect(0).json()["migrations"].as_array().unwrap().len())
            .sum();
        assert_eq!(
            applied, 5,
            "round {round}: each new migration once between the two"
        );
        assert_eq!(db.applied().len(), 5 * round, "round {round}");
    }
    let tables = db.psql("select count(*) from pg_tables where tablename ~ '^r[0-9]+_[0-9]+$'");
    assert_eq!(tables, "100");
}

#[test]
fn dbmate_and_dbmigrate_read_each_others_databases() {
    let dbmate = harness::repo_root().join("node_modules/.bin/dbmate");
    assert!(
        dbmate.exists(),
        "this test needs dbmate: run `bash scripts/setup-test.sh` (npm install)"
    );
    let db = Db::new();
    for n in 1..=3 {
        db.write(&format!("2024010100000{n}_t{n}.sql"), &table_migration(n));
    }
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{}/postgres?sslmode=require",
        harness::SUPERUSER,
        harness::SUPERUSER_PASSWORD,
        db.pg.port
    );
    let dbmate_run = |args: &[&str]| {
        Tool::program(&dbmate)
            .args(["--no-dump-schema", "--migrations-dir"])
            .arg_path(&db.dir.path)
            .args(args)
            .env("DATABASE_URL", &url)
            .run()
    };
    // dbmate applies the first two; dbmigrate sees them as applied and applies the third.
    dbmate_run(&["migrate"]).expect(0);
    db.write("20240101000004_t4.sql", &table_migration(4));
    let status = db.migrate(&["status"]).expect(0).json();
    assert_eq!(status["pending"], 1, "{status}");
    db.migrate(&["up"]).expect(0);
    let dbmate_status = dbmate_run(&["status"]);
    assert!(
        dbmate_status.expect(0).stdout.contains("Applied: 4"),
        "{}",
        dbmate_status.stdout
    );
    assert!(
        dbmate_status.stdout.contains("Pending: 0"),
        "{}",
        dbmate_status.stdout
    );
    // And dbmate can roll back what dbmigrate applied.
    dbmate_run(&["rollback"]).expect(0);
    assert_eq!(db.migrate(&["status"]).expect(0).json()["pending"], 1);
}

fn sleepy_migrations(db: &Db, count: usize) {
    sleepy_migrations_of(db, count, 0.05);
}

fn sleepy_migrations_of(db: &Db, count: usize, seconds: f64) {
    for n in 1..=count {
        db.write(
            &format!("{n:02}_s.sql"),
            &format!("-- migrate:up\ncreate table s{n} (id int);\nselect pg_sleep({seconds});\n-- migrate:down\ndrop table s{n};\n"),
        );
    }
}

fn assert_each_applied_once(db: &Db, count: usize) {
    assert_eq!(db.applied().len(), count);
    let tables = db.psql("select count(*) from pg_tables where tablename ~ '^s[0-9]+$'");
    assert_eq!(tables, count.to_string());
}

#[test]
fn kill_9_mid_run_then_rerun_converges() {
    let db = Db::new();
    // 30 × 0.2 s: a 6 s batch, far longer than the server's 1 s check for a dead client.
    sleepy_migrations_of(&db, 30, 0.2);
    let mut child = std::process::Command::new(harness::bin("dbmigrate"))
        .arg("--dir")
        .arg(&db.dir.path)
        .arg("up")
        // The profile names libpq's PGPASSWORD as its secret (as Tool::new gives it).
        .env("PGPASSWORD", harness::SUPERUSER_PASSWORD)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), db.profile("open").as_bytes())
        .unwrap();
    drop(child.stdin.take());
    // Killed while the server runs one of its sleeps: mid-run.
    db.pg.wait_until_sleeping("dbmigrate");
    harness::kill_9(&mut child, "dbmigrate up");
    // Once the dead client's session is gone (the server checks every second), the run stopped
    // part-way: not every migration applied.
    db.pg.wait_until_no_session("dbmigrate");
    let landed = db.applied().len();
    assert!(
        landed < 30,
        "the kill landed mid-run, not after it: {landed} applied"
    );
    // The rerun finishes the job, each migration once.
    db.migrate(&["up"]).expect(0);
    assert_each_applied_once(&db, 30);
}

#[test]
fn a_connection_cut_mid_batch_is_exit_4_and_a_rerun_converges() {
    let db = Db::new();
    sleepy_migrations(&db, 30);
    let proxy = harness::CutProxy::start(db.pg.port);
    let mut profile: serde_json::Value = serde_json::from_str(&db.profile("open")).unwrap();
    profile["conn"]["port"] = proxy.port.into();
    let dir = db.dir.path.clone();
    let runner = std::thread::spawn(move || {
        Tool::new("dbmigrate")
            .arg_path_flag("--dir", &dir)
            .args(["up"])
            .stdin(profile.to_string())
            .run()
    });
    std::thread::sleep(std::time::Duration::from_millis(700));
    proxy.cut();
    let run = runner.join().unwrap();
    run.expect_error("dbmigrate", 4, "the connection broke while migrations ran");
    db.migrate(&["up"]).expect(0);
    assert_each_applied_once(&db, 30);
}

#[test]
fn dump_is_deterministic_and_names_an_old_pg_dump() {
    let db = Db::new();
    for n in 1..=2 {
        db.write(&format!("{n}_t.sql"), &table_migration(n));
    }
    db.migrate(&["up"]).expect(0);
    let out = TempDir::new("dump");
    let first = out.path.join("a/schema.sql");
    let second = out.path.join("b/schema.sql");
    for file in [&first, &second] {
        // pg_dump gets the password in its environment, never on its command line.
        let (run, processes) = harness::sample_processes(&["pg_dump"], || {
            db.migrate(&["dump", "--file", file.to_str().unwrap()])
        });
        assert!(
            run.expect(0).stderr.contains("(2 applied versions)"),
            "{}",
            run.stderr
        );
        let password = harness::SUPERUSER_PASSWORD;
        let pg_dump: Vec<_> = processes.iter().filter(|p| p.runs("pg_dump")).collect();
        assert!(pg_dump.iter().all(|p| !p.cmdline.contains(password)));
        assert!(pg_dump
            .iter()
            .any(|p| p.environ.contains(&format!("PGPASSWORD={password}"))));
    }
    let text = std::fs::read_to_string(&first).unwrap();
    assert_eq!(
        text,
        std::fs::read_to_string(&second).unwrap(),
        "same schema, same bytes"
    );
    assert!(text.contains("CREATE TABLE public.t2"), "{text}");
    assert!(
        text.ends_with(
            "INSERT INTO public.schema_migrations (version) VALUES\n    ('1'),\n    ('2');\n"
        ),
        "{text}"
    );
    assert!(!text.contains("\\restrict") && !text.contains("Dumped by pg_dump version"));

    // A pg_dump older than the server is a clear error, not a silent skip.
    let fake = TempDir::new("oldpg");
    for tool in ["initdb", "pg_ctl", "pg_dump"] {
        let path = fake.path.join(tool);
        std::fs::write(&path, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let run = Tool::new("dbmigrate")
        .arg_path_flag("--dir", &db.dir.path)
        .args(["dump", "--file", out.path.join("c.sql").to_str().unwrap()])
        .env("DBTOOLS_PG_BIN", &fake.path)
        .stdin(db.profile("open"))
        .run();
    run.expect_error(
        "dbmigrate",
        2,
        "is version 9 but the server is PostgreSQL 15",
    );
    assert!(!out.path.join("c.sql").exists());
}

/// Progress shows as each migration commits, not when the batch ends: migration 2 waits on a
/// lock this test holds, and by then migration 1's line is on stderr and its record committed.
#[test]
fn progress_lines_stream_while_the_batch_runs() {
    use std::io::BufRead;
    let db = Db::new();
    db.write("1_first.sql", &table_migration(1));
    db.write(
        "2_waits.sql",
        "-- migrate:up\nselect pg_advisory_xact_lock(4242);\ncreate table t2 (id int);\n-- migrate:down\ndrop table t2;\n",
    );
    let mut holder = dbtools::pg::connect(
        &db.pg.conn(SslMode::VerifyFull),
        "test",
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    holder
        .batch_execute("select pg_advisory_lock(4242)")
        .unwrap();
    let mut child = std::process::Command::new(harness::bin("dbmigrate"))
        .arg("--dir")
        .arg(&db.dir.path)
        .arg("up")
        .env_remove("DBTOOLS_CONFIG")
        .env("PGPASSWORD", harness::SUPERUSER_PASSWORD)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), db.profile("open").as_bytes())
        .unwrap();
    drop(child.stdin.take());
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("dbmigrate: committed 1_first.sql ("),
        "{first}"
    );
    assert_eq!(
        db.applied(),
        ["1"],
        "migration 2 is still waiting on the lock"
    );
    holder
        .batch_execute("select pg_advisory_unlock(4242)")
        .unwrap();
    let second = lines.next().unwrap().unwrap();
    assert!(
        second.starts_with("dbmigrate: applied 2_waits.sql ("),
        "{second}"
    );
    assert!(child.wait().unwrap().success());
    assert_eq!(db.applied(), ["1", "2"]);
}

/// A role without the TEMP privilege cannot define the throttled progress function: each
/// migration then announces itself with a small notice of its own, and the run is the same.
#[test]
fn a_role_without_temp_privilege_still_gets_a_line_per_migration() {
    let db = Db::new();
    db.psql(
        "create role app login password 'app-secret'; grant create on schema public to app; \
         grant all on dbtools.env_stamp, dbtools.audit to app; grant usage on schema dbtools to app; \
         revoke temporary on database postgres from public",
    );
    assert_eq!(
        db.pg.psql(
            "postgres",
            "set role app; select has_database_privilege('postgres', 'TEMP')"
        ),
        "f"
    );
    for n in 1..=3 {
        db.write(&format!("{n}_t{n}.sql"), &table_migration(n));
    }
    let mut conn = db.pg.conn(SslMode::VerifyFull);
    conn.user = "app".into();
    let run = Tool::new("dbmigrate")
        .arg_path_flag("--dir", &db.dir.path)
        .args(["up"])
        .env("PGPASSWORD", "app-secret")
        .stdin(db.pg.profile("dev", &conn))
        .run();
    run.expect(0);
    for n in 1..=3 {
        let verb = if n == 3 { "applied" } else { "committed" };
        assert_eq!(
            run.stderr
                .matches(&format!("dbmigrate: {verb} {n}_t{n}.sql"))
                .count(),
            1,
            "{}",
            run.stderr
        );
    }
    assert_eq!(db.applied(), ["1", "2", "3"]);
}

/// A statement our parser (pg_query, PostgreSQL 18's grammar) reads and this server's grammar
/// does not: JSON_TABLE before 17, a virtual generated column on 17 (no pass of make test runs
/// 17; kept for a server that is). None on 18 and later, whose grammar is our parser's own:
/// there the case cannot arise.
fn syntax_newer_than(db: &Db) -> Option<&'static str> {
    let major = harness::server_major(db.pg.port, harness::SUPERUSER, harness::SUPERUSER_PASSWORD)
        .expect("the server's major");
    match major {
        ..=16 => Some("select * from json_table('[]'::jsonb, '$[*]' columns (a int path '$'));"),
        17 => Some("create table t9 (a int, b int generated always as (a * 2) virtual);"),
        _ => None,
    }
}

/// A run larger than one message (a few MB) goes in several, each ending in a durable commit:
/// a syntax error in the last message leaves the earlier messages' migrations applied.
#[test]
fn a_very_large_run_is_split_into_several_messages() {
    let db = Db::new();
    let padding = format!("-- {}\n", "x".repeat(2 << 20));
    for n in 1..=3 {
        db.write(
            &format!("{n}_big{n}.sql"),
            &format!("-- migrate:up\n{padding}create table big{n} (id int);\n-- migrate:down\ndrop table big{n};\n"),
        );
    }
    // The last message fails in the server's parser (a syntax it lacks); on PostgreSQL 18,
    // whose grammar is our parser's, a statement that fails as it runs stands in for it.
    // That one runs 3 first, so 3 stays too.
    let newer = syntax_newer_than(&db);
    db.write(
        "4_newer.sql",
        &format!(
            "-- migrate:up\n{}\n-- migrate:down\n",
            newer.unwrap_or("select 1 / 0;")
        ),
    );
    let run = db.migrate(&["up"]);
    // A syntax error names its line; a statement that fails as it runs, its file.
    let said = if newer.is_some() {
        "4_newer.sql:2: syntax error"
    } else {
        "4_newer.sql"
    };
    run.expect_error("dbmigrate", 5, said);
    let expected: &[&str] = if newer.is_some() {
        &["1", "2"]
    } else {
        &["1", "2", "3"]
    };
    assert_eq!(
        db.applied(),
        expected,
        "messages before the failing one committed"
    );
}

#[test]
fn verify_proves_the_example_migrations_reverse_and_keeps_nothing() {
    let db = Db::new();
    let run = Tool::new("dbmigrate")
        .arg_path_flag("--dir", &harness::repo_root().join("migrations"))
        .args(["verify"])
        .stdin(db.profile("open"))
        .run();
    let result = run.expect(0).json();
    assert!(result["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["state"] == "verified"));
    assert!(
        run.stderr.contains("all 4 migrations reverse"),
        "{}",
        run.stderr
    );
    assert_eq!(
        db.psql("select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname in ('public', 'dbmigrate_verify')"),
        "0",
        "verify works in a transaction it rolls back"
    );
    assert!(db.applied().is_empty());
}

#[test]
fn verify_names_a_down_that_does_not_undo_its_up() {
    let db = Db::new();
    db.write("1_t1.sql", &table_migration(1));
    db.write(
        "2_concurrent.sql",
        "-- migrate:up transaction:false\ncreate index concurrently t1_id_note on t1 (id, note);\n-- migrate:down transaction:false\ndrop index concurrently t1_id_note;\n",
    );
    db.write(
        "3_sloppy.sql",
        "-- migrate:up\ncreate table t3 (id int);\ncreate table t3_log (id int);\n-- migrate:down\ndrop table t3;\n",
    );
    let run = db.migrate(&["verify"]);
    let result = run.expect(1).json();
    let states: Vec<&str> = result["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["verified", "verified", "irreversible"]);
    assert!(
        run.stderr
            .contains("3_sloppy.sql: down does not undo up: left over: ")
            && run.stderr.contains("relation t3_log table"),
        "{}",
        run.stderr
    );
    db.write(
        "3_sloppy.sql",
        "-- migrate:up\ncreate table t3 (id int);\n-- migrate:down\n",
    );
    let run = db.migrate(&["verify"]);
    run.expect(1);
    assert!(
        run.stderr
            .contains("3_sloppy.sql: its down section is empty"),
        "{}",
        run.stderr
    );
}

#[test]
fn diff_against_another_env_reports_drift_and_exits_1() {
    let pg = PgCluster::start(Tls::None);
    let config = pg.envs_config(&[("dev", "open"), ("test", "confirm")]);
    let project = harness::Project::new(&config);
    let dir = TempDir::new("m");
    for n in 1..=2 {
        std::fs::write(dir.path.join(format!("{n}_t{n}.sql")), table_migration(n)).unwrap();
    }
    for env in ["dev", "test"] {
        pg.psql("postgres", &format!("create database db_{env}"));
        pg.stamp(&format!("db_{env}"), env);
    }
    let migrate = |env: &str, args: &[&str]| {
        project
            .tool("dbmigrate")
            .arg_path_flag("--dir", &dir.path)
            .args(args)
            .args(["--env", env])
            .env("PW", harness::SUPERUSER_PASSWORD)
            .run()
    };
    migrate("dev", &["up"]).expect(0);
    migrate("test", &["up", "--to", "1"]).expect(0);
    let run = migrate("dev", &["diff", "--against", "test"]);
    let report = run.expect(1).json();
    assert_eq!(report["kind"], "dbtools.migrate.diff/v1");
    assert_eq!(report["same"], false);
    assert_eq!(report["versions_only_in_env"], serde_json::json!(["2"]));
    let only: Vec<&str> = report["only_in_env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(only.contains(&"relation t2 table"), "{only:?}");
    assert!(
        only.iter()
            .any(|l| l.starts_with("index CREATE INDEX t2_note ON public.t2")),
        "{only:?}"
    );
    assert!(report["only_in_against"].as_array().unwrap().is_empty());
    migrate("test", &["up"]).expect(0);
    let same = migrate("dev", &["diff", "--against", "test"]);
    assert_eq!(same.expect(0).json()["same"], true);
}

/// dbmate's verbs: `rollback` is `down`, `wait` waits for the database and reports the status,
/// and `--dry-run` prints the SQL `up` and `down` would send, in order, with its wrapping.
#[test]
fn dbmate_verbs_rollback_wait_and_dry_runs_that_print_the_sql() {
    let db = Db::new();
    db.write(
        "1_a.sql",
        "-- migrate:up\ncreate table a (id int);\n-- migrate:down\ndrop table a;\n",
    );
    db.write(
        "2_idx.sql",
        "-- migrate:up transaction:false lock_timeout:2s\ncreate index concurrently a_id on a (id);\n-- migrate:down transaction:false\ndrop index concurrently a_id;\n",
    );
    let in_order = |text: &str, parts: &[&str]| {
        let mut from = 0;
        for part in parts {
            let at = text[from..]
                .find(part)
                .unwrap_or_else(|| panic!("{part:?} missing (in order) from:\n{text}"));
            from += at + part.len();
        }
    };

    let dry = db.migrate(&["up", "--dry-run"]);
    let result = dry.expect(0).json();
    assert_eq!(result["dry_run"], true);
    in_order(
        result["sql"].as_str().unwrap(),
        &[
            "SET lock_timeout = '5000ms';",
            "SET statement_timeout = '3600000ms';",
            "BEGIN;",
            "create table a (id int);",
            "INSERT INTO schema_migrations",
            "'1'",
            "COMMIT;",
            "-- 2_idx.sql: transaction:false, each statement sent on its own",
            "SET lock_timeout = '2000ms';",
            "create index concurrently a_id on a (id);",
            "SET lock_timeout = '5000ms';",
            "INSERT INTO schema_migrations",
            "'2'",
        ],
    );
    assert!(db.applied().is_empty(), "a dry run changes nothing");

    let waited = db.migrate(&["wait"]);
    let status = waited.expect(0).json();
    assert_eq!(status["kind"], "dbtools.migrate.status/v1");
    assert_eq!(status["pending"], 2);

    db.migrate(&["up"]).expect(0);
    let dry = db.migrate(&["down", "--dry-run"]);
    let result = dry.expect(0).json();
    in_order(
        result["sql"].as_str().unwrap(),
        &[
            "-- 2_idx.sql: transaction:false",
            "drop index concurrently a_id;",
            "DELETE FROM schema_migrations WHERE version = '2';",
        ],
    );
    assert_eq!(result["migrations"][0]["version"], "2");
    assert_eq!(db.applied(), ["1", "2"], "a dry run changes nothing");

    let rollback = db.migrate(&["rollback"]);
    rollback.expect(0);
    assert!(
        rollback.stderr.contains("reverted 2_idx.sql"),
        "{}",
        rollback.stderr
    );
    assert_eq!(db.applied(), ["1"]);
}
