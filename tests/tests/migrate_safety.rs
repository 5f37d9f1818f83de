//! dbmigrate on a database the app is using: every statement under a lock_timeout, a migration
//! that hit it sent again (naming who held the lock) until it lands or the bound is reached,
//! Ctrl-C and `kill -9` that stop the server's work too, "applied" only once durable, and no
//! INVALID index left by a failed CREATE INDEX CONCURRENTLY. Real PostgreSQL; what is checked
//! is an order of events, never a timing (bounded waits only keep a hang from hanging the suite).

use dbtools::contract::SslMode;
use dbtools::pg;
use harness::{PgCluster, Running, TempDir, Tls, Tool, SUPERUSER_PASSWORD};
use std::time::{Duration, Instant};

/// A hang guard: many times what any step here takes.
const HANG: Duration = Duration::from_secs(60);

struct Db {
    pg: PgCluster,
    dir: TempDir,
}

impl Db {
    /// A stamped dev database with a table `t` the app reads, and a role `reader` (not the
    /// migrator's) for the sessions that hold locks.
    fn new() -> Db {
        let pg = PgCluster::start(Tls::Offered);
        pg.stamp("postgres", "dev");
        pg.psql(
            "postgres",
            &format!(
                "create table t (id int primary key, v int); insert into t select g, g from generate_series(1, 3) g; \
                 create role reader login password '{SUPERUSER_PASSWORD}'; grant select on t to reader"
            ),
        );
        Db {
            pg,
            dir: TempDir::new("migrations"),
        }
    }

    fn client(&self, user: &str, application: &str) -> pg::Client {
        let mut conn = self.pg.conn(SslMode::VerifyFull);
        conn.user = user.into();
        pg::connect(&conn, application, Duration::from_secs(10)).unwrap()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path.join(name), text).unwrap();
    }

    fn migrate(&self, args: &[&str]) -> Tool {
        self.migrate_as("open", args)
    }

    /// dbmigrate with the profile claiming `protection` (stricter than the stamp's open wins).
    fn migrate_as(&self, protection: &str, args: &[&str]) -> Tool {
        let mut profile: serde_json::Value =
            serde_json::from_str(&self.pg.profile("dev", &self.pg.conn(SslMode::VerifyFull)))
                .unwrap();
        profile["protection"] = protection.into();
        Tool::new("dbmigrate")
            .arg_path_flag("--dir", &self.dir.path)
            .args(args)
            .stdin(profile.to_string())
    }

    fn psql(&self, sql: &str) -> String {
        self.pg.psql("postgres", sql)
    }

    fn applied(&self) -> String {
        self.psql(
            "select coalesce(string_agg(version, ',' order by version), '') from schema_migrations",
        )
    }
}

/// Polls until `condition` holds; fails the test if it never does.
fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a dbmigrate session is waiting for a lock on table `t`.
fn migrator_waits_for_t(monitor: &mut pg::Client) -> bool {
    monitor
        .query_one(
            "select exists (select from pg_locks l join pg_stat_activity a using (pid) \
             where l.relation = 't'::regclass and not l.granted and a.application_name = 'dbmigrate')",
            &[],
        )
        .unwrap()
        .get(0)
}

fn holds_lock_on_t(db: &Db) -> (pg::Client, i32) {
    let mut reader = db.client("reader", "long-reader");
    reader
        .batch_execute("begin; select count(*) from t")
        .unwrap();
    let pid = reader
        .query_one("select pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    (reader, pid)
}

#[test]
fn a_migration_behind_a_long_reader_lets_the_app_through_and_lands_once_the_reader_is_gone() {
    let db = Db::new();
    db.write(
        "1_flag.sql",
        "-- migrate:up lock_timeout:1s\nalter table t add column flag int not null default 0;\n-- migrate:down\nalter table t drop column flag;\n",
    );
    let (mut reader, reader_pid) = holds_lock_on_t(&db);
    let migrator = db.migrate(&["up", "--lock-retries", "30"]).spawn();
    let mut monitor = db.client("postgres", "monitor");
    until("the migration waiting for its lock on t", || {
        migrator_waits_for_t(&mut monitor)
    });

    // The app's query, issued while the migration waits, queues behind its lock request; it
    // completes because the request gives up its place, while the reader still holds its lock.
    let mut app = db.client("reader", "the-app");
    let (done, answered) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let count: i64 = app.query_one("select count(*) from t", &[]).unwrap().get(0);
        let _ = done.send(count);
    });
    let count = answered
        .recv_timeout(HANG)
        .expect("the app's query stayed queued behind the migration");
    assert_eq!(count, 3);
    let reader_state: String = monitor
        .query_one(
            "select state from pg_stat_activity where pid = $1",
            &[&reader_pid],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        reader_state, "idle in transaction",
        "the reader still holds t"
    );

    // The reader goes; the migration lands on a retry, with no rerun by hand.
    reader.batch_execute("commit").unwrap();
    let run = migrator.wait_within(HANG, "dbmigrate up behind a reader");
    run.expect(0);
    assert_eq!(db.applied(), "1");
    assert_eq!(
        db.psql("select count(*) from information_schema.columns where table_name = 't' and column_name = 'flag'"),
        "1"
    );
    assert!(
        run.stderr.contains("1_flag.sql waited longer than its lock_timeout and was rolled back")
            && run.stderr.contains(&format!(
                "the lock was held by pid {reader_pid} (role reader, application long-reader, idle in transaction since"
            ))
            && run.stderr.contains("retry 1 of 30 in"),
        "{}",
        run.stderr
    );
}

#[test]
fn past_the_retry_bound_the_run_stops_naming_the_blocker_with_nothing_half_done() {
    let db = Db::new();
    db.write(
        "1_u.sql",
        "-- migrate:up\ncreate table u (id int);\n-- migrate:down\ndrop table u;\n",
    );
    db.write(
        "2_flag.sql",
        "-- migrate:up lock_timeout:200ms\nalter table t add column flag int;\n-- migrate:down\nalter table t drop column flag;\n",
    );
    let (_reader, reader_pid) = holds_lock_on_t(&db);
    let run = db
        .migrate(&["up", "--lock-retries", "1"])
        .run_within(HANG, "dbmigrate up past its retries");
    run.expect_error("dbmigrate", 5, "rolled back after 2 tries (lock_retries 1)");
    let error = run.json();
    assert_eq!(error["error"], "lock-timeout");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("2_flag.sql: canceling statement due to lock timeout (55P03)")
            && message.contains("1 migration(s) were applied before it in this run")
            && message.contains(&format!(
                "the lock was held by pid {reader_pid} (role reader"
            )),
        "{message}"
    );
    assert_eq!(
        db.applied(),
        "1",
        "the first landed; the second left nothing"
    );
    assert!(run.stderr.contains("retry 1 of 1 in"), "{}", run.stderr);
}

#[test]
fn ctrl_c_mid_batch_cancels_on_the_server_and_reports_what_committed() {
    let db = Db::new();
    db.write(
        "1_a.sql",
        "-- migrate:up\ncreate table a (id int);\n-- migrate:down\ndrop table a;\n",
    );
    db.write(
        "2_slow.sql",
        "-- migrate:up\ncreate table b (id int);\nselect pg_sleep(300);\n-- migrate:down\ndrop table b;\n",
    );
    db.write(
        "3_c.sql",
        "-- migrate:up\ncreate table c (id int);\n-- migrate:down\ndrop table c;\n",
    );
    let migrator = db.migrate(&["up"]).spawn();
    let mut monitor = db.client("postgres", "monitor");
    // (pg_stat_activity shows only the start of the batch's text: the wait event says it.)
    let sleeping = "select count(*) from pg_stat_activity where state = 'active' and wait_event = 'PgSleep' and application_name = 'dbmigrate'";
    until("the second migration running", || {
        monitor.query_one(sleeping, &[]).unwrap().get::<_, i64>(0) == 1
    });
    migrator.signal("INT");
    let run = migrator.wait_within(HANG, "dbmigrate up after Ctrl-C");
    assert_eq!(run.code, 130, "{}", run.stderr);
    let message = run.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("was cancelled on the server and rolled back; 1 migration(s) of this run committed before it")
            && message.contains("1 after it not run"),
        "{message}"
    );
    // What it said is what the database holds, and the server stopped working on it.
    assert_eq!(db.applied(), "1");
    assert_eq!(db.psql("select to_regclass('b') is null"), "t");
    assert_eq!(
        monitor.query_one(sleeping, &[]).unwrap().get::<_, i64>(0),
        0
    );
}

#[test]
fn kill_9_mid_batch_stops_the_server_too() {
    let db = Db::new();
    db.write(
        "1_slow.sql",
        "-- migrate:up\ncreate table b (id int);\nselect pg_sleep(300);\n-- migrate:down\ndrop table b;\n",
    );
    let migrator: Running = db.migrate(&["up"]).spawn();
    let mut monitor = db.client("postgres", "monitor");
    let sleeping = "select count(*) from pg_stat_activity where wait_event = 'PgSleep' and application_name = 'dbmigrate'";
    until("the migration running", || {
        monitor.query_one(sleeping, &[]).unwrap().get::<_, i64>(0) == 1
    });
    migrator.signal("KILL");
    let _ = migrator.wait_within(HANG, "dbmigrate after kill -9");
    // Nothing can be sent from a killed process: the server notices the client is gone
    // (client_connection_check_interval) instead of sleeping out its 300 s.
    until("the server ending the dead client's session", || {
        monitor.query_one(sleeping, &[]).unwrap().get::<_, i64>(0) == 0
    });
    assert_eq!(db.psql("select to_regclass('b') is null"), "t");
}

#[test]
fn a_line_says_applied_only_once_its_commit_is_durable() {
    let db = Db::new();
    for n in 1..=3 {
        db.write(
            &format!("{n}_m{n}.sql"),
            &format!(
                "-- migrate:up\ncreate table m{n} (id int);\n-- migrate:down\ndrop table m{n};\n"
            ),
        );
    }
    let run = db.migrate(&["up"]).run();
    run.expect(0);
    // One message: the first two COMMITs are asynchronous, the last one flushes all three.
    for line in [
        "committed 1_m1.sql (",
        "committed 2_m2.sql (",
        "applied 3_m3.sql (",
    ] {
        assert!(run.stderr.contains(line), "{line}: {}", run.stderr);
    }
    assert!(!run.stderr.contains("applied 1_m1.sql"), "{}", run.stderr);
}

#[test]
fn a_failed_concurrent_index_leaves_nothing_and_a_leftover_is_dropped_on_the_rerun() {
    let db = Db::new();
    db.psql("create table d (v int); insert into d values (1), (1)");
    let migration = |if_not_exists: &str| {
        format!(
            "-- migrate:up transaction:false\ncreate unique index concurrently {if_not_exists}d_v on d (v);\n-- migrate:down transaction:false\ndrop index concurrently d_v;\n"
        )
    };
    db.write("1_idx.sql", &migration(""));
    let run = db.migrate(&["up"]).run();
    run.expect_error("dbmigrate", 5, "could not create unique index");
    assert!(
        run.json()["message"]
            .as_str()
            .unwrap()
            .contains("the INVALID index public.d_v it left was dropped"),
        "{}",
        run.stderr
    );
    assert_eq!(db.psql("select to_regclass('d_v') is null"), "t");

    // A crash (here: psql, which does not clean up) leaves one behind; IF NOT EXISTS would
    // keep it, invalid, and report success.
    let leftover = Tool::program("psql")
        .args([
            "-XAtq",
            "-c",
            "create unique index concurrently d_v on d (v)",
        ])
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", db.pg.port.to_string())
        .env("PGUSER", "postgres")
        .env("PGPASSWORD", SUPERUSER_PASSWORD)
        .env("PGDATABASE", "postgres")
        .run();
    assert_ne!(leftover.code, 0);
    assert_eq!(
        db.psql("select indisvalid from pg_index where indexrelid = 'd_v'::regclass"),
        "f"
    );
    db.psql("truncate d; insert into d values (1), (2)");
    db.write("1_idx.sql", &migration("if not exists "));
    let run = db.migrate(&["up"]).run();
    run.expect(0);
    assert!(
        run.stderr.contains("dropped the INVALID index public.d_v that an earlier failed run of CREATE INDEX CONCURRENTLY left"),
        "{}",
        run.stderr
    );
    assert_eq!(
        db.psql("select indisvalid from pg_index where indexrelid = 'd_v'::regclass"),
        "t"
    );

    // A valid index of the name is never touched.
    db.psql("create index e_v on d (v)");
    let before = db.psql("select 'e_v'::regclass::oid");
    db.write(
        "2_e.sql",
        "-- migrate:up transaction:false\ncreate index concurrently if not exists e_v on d (v);\n-- migrate:down\nselect 1;\n",
    );
    let run = db.migrate(&["up"]).run();
    run.expect(0);
    assert_eq!(db.psql("select 'e_v'::regclass::oid"), before);
    assert!(!run.stderr.contains("dropped"), "{}", run.stderr);
}

#[test]
fn on_a_protected_env_the_lint_weighs_a_table_by_its_size() {
    let db = Db::new();
    db.psql("create table empty_t (v int)");
    db.write(
        "1_idx.sql",
        "-- migrate:up\ncreate index empty_t_v on empty_t (v);\n-- migrate:down\ndrop index empty_t_v;\n",
    );
    // A blocking index build on an empty table blocks nothing: no finding.
    let run = db.migrate_as("confirm", &["up"]).run();
    run.expect(0);
    assert!(
        run.stderr
            .contains("lint: 1 finding(s) on empty tables left out"),
        "{}",
        run.stderr
    );
    // The same on a table with rows is refused, its size said.
    db.write(
        "2_idx.sql",
        "-- migrate:up\ncreate index t_v on t (v);\n-- migrate:down\ndrop index t_v;\n",
    );
    let run = db.migrate_as("confirm", &["up"]).run();
    run.expect_error("dbmigrate", 3, "create-index-blocking");
    assert!(
        run.stderr.contains("\"t\" holds 8192 bytes now"),
        "{}",
        run.stderr
    );
    assert_eq!(db.applied(), "1");
    // With statistics, the row estimate is said too.
    db.psql("analyze t");
    let run = db.migrate_as("confirm", &["up"]).run();
    assert!(
        run.stderr
            .contains("\"t\" holds 8192 bytes now (about 3 rows)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_statement_timeout_fails_the_migration_without_retrying_it() {
    let db = Db::new();
    db.write(
        "1_slow.sql",
        "-- migrate:up statement_timeout:200ms\nselect pg_sleep(5);\n-- migrate:down\nselect 1;\n",
    );
    let run = db
        .migrate(&["up"])
        .run_within(HANG, "dbmigrate up past its statement_timeout");
    run.expect_error(
        "dbmigrate",
        5,
        "canceling statement due to statement timeout (57014)",
    );
    assert!(!run.stderr.contains("retry"), "{}", run.stderr);
    assert_eq!(run.json()["error"], "failed");
    assert_eq!(db.applied(), "");
}
