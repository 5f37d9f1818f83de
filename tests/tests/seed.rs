//! dbseed end to end on a throwaway cluster: SQL and CSV seeds applied once each (the second
//! run changes nothing), bad CSV rows named by line with nothing loaded, a seed on a missing
//! table, SQL that does not parse, idempotence proven by `verify`, edited files, locked envs,
//! lint findings, `--reset` through the guard, and two runs at once loading a CSV only once.

use dbtools::contract::SslMode;
use harness::{PgCluster, Project, TempDir, Tls, Tool};

struct Seeds {
    pg: PgCluster,
    project: Project,
    dir: TempDir,
}

impl Seeds {
    fn new() -> Seeds {
        let pg = PgCluster::start(Tls::None);
        let config = pg.envs_config(&[("dev", "open"), ("test", "confirm"), ("prod", "locked")]);
        let seeds = Seeds {
            project: Project::new(&config),
            dir: TempDir::new("seeds"),
            pg,
        };
        for env in ["dev", "test", "prod"] {
            seeds.psql("postgres", &format!("create database db_{env}"));
            seeds.psql(
                &format!("db_{env}"),
                "create table channels (id int generated always as identity primary key, slug text unique not null, title text not null);
                 create table agents (id int generated always as identity primary key, handle text unique not null, name text not null);
                 create table posts (id int generated always as identity primary key, channel_id int not null references channels (id), title text not null);",
            );
            seeds.pg.stamp(&format!("db_{env}"), env);
        }
        seeds
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.dir.path.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn profile(&self, env: &str) -> String {
        let mut conn = self.pg.conn(SslMode::Disable);
        conn.dbname = format!("db_{env}");
        self.pg.profile(env, &conn)
    }

    fn seed(&self, env: &str, args: &[&str]) -> harness::Run {
        self.project
            .tool("dbseed")
            .arg_path_flag("--dir", &self.dir.path)
            .args(args)
            .stdin(self.profile(env))
            .run()
    }

    fn psql(&self, db: &str, sql: &str) -> String {
        self.pg.psql(db, sql)
    }
}

const CHANNELS: &str = "INSERT INTO channels (slug, title) VALUES ('general', 'General'), ('help', 'Help') ON CONFLICT (slug) DO NOTHING;\n";

#[test]
fn sql_and_csv_seeds_apply_once_and_the_profile_flows_on() {
    let s = Seeds::new();
    s.write("common/010_channels.sql", CHANNELS);
    s.write(
        "dev/020_agents.csv",
        "\u{feff}handle,name\r\nada,Ada\r\n\"grace\",\"Hopper, Grace\"\r\n",
    );
    s.write("test/020_agents.csv", "handle,name\nonly_in_test,T\n");
    let first = s.seed("dev", &["apply"]);
    let result = first.expect(0).json();
    assert_eq!(result["kind"], "dbtools.seed.result/v1");
    let files: Vec<&str> = result["seeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        ["common/010_channels.sql", "dev/020_agents.csv"],
        "common first, then the env's own"
    );
    assert_eq!(result["seeds"][1]["rows"], 2);
    assert_eq!(
        s.psql(
            "db_dev",
            "select string_agg(name, '|' order by handle) from agents"
        ),
        "Ada|Hopper, Grace"
    );
    let second = s.seed("dev", &["apply"]);
    assert_eq!(
        second.expect(0).json()["seeds"].as_array().unwrap().len(),
        0
    );
    assert!(
        second.stderr.contains("nothing to seed"),
        "{}",
        second.stderr
    );
    assert_eq!(s.psql("db_dev", "select count(*) from agents"), "2");
    // The result carries the profile on.
    let witness = Tool::new("dbconnect")
        .args(["check"])
        .stdin(second.stdout.clone())
        .run();
    assert_eq!(witness.expect(0).json()["database"], "db_dev");
    let status = s.seed("dev", &["status", "--exit-code"]);
    let status = status.expect(0).json();
    assert!(status["seeds"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["state"] == "applied"));
}

#[test]
fn a_bad_csv_row_is_named_by_line_and_nothing_of_the_file_loads() {
    let s = Seeds::new();
    s.write("common/010_channels.sql", CHANNELS);
    s.write(
        "dev/020_agents.csv",
        "handle,name\nada,Ada\ngrace\nedsger,E\n",
    );
    let run = s.seed("dev", &["apply"]);
    run.expect_error(
        "dbseed",
        5,
        "dev/020_agents.csv:3: missing data for column \"name\"",
    );
    assert!(
        run.stderr.contains("nothing of this file was loaded"),
        "{}",
        run.stderr
    );
    assert_eq!(s.psql("db_dev", "select count(*) from agents"), "0");
    // The file before it committed on its own; the CSV has no record.
    assert_eq!(
        s.psql("db_dev", "select string_agg(file, ',') from dbtools.seeds"),
        "common/010_channels.sql"
    );
    s.write(
        "dev/020_agents.csv",
        "handle,name\nada,Ada\ngrace,G\nedsger,E\n",
    );
    s.seed("dev", &["apply"]).expect(0);
    assert_eq!(s.psql("db_dev", "select count(*) from agents"), "3");
}

#[test]
fn a_seed_on_a_missing_table_and_a_file_that_does_not_parse() {
    let s = Seeds::new();
    s.write(
        "dev/010_tags.sql",
        "-- tags\n\nINSERT INTO tags (name) VALUES ('x') ON CONFLICT DO NOTHING;\n",
    );
    s.seed("dev", &["apply"]).expect_error(
        "dbseed",
        5,
        "dev/010_tags.sql:3: relation \"tags\" does not exist (42P01)",
    );
    assert_eq!(s.psql("db_dev", "select count(*) from dbtools.seeds"), "0");
    s.write(
        "dev/010_tags.sql",
        "select 1;\nINSRT INTO channels VALUES (1);\n",
    );
    s.write("common/005_ok.sql", CHANNELS);
    s.seed("dev", &["apply"]).expect_error(
        "dbseed",
        2,
        "dev/010_tags.sql:2: syntax error at or near \"INSRT\"",
    );
    assert_eq!(
        s.psql("db_dev", "select count(*) from channels"),
        "0",
        "a file that does not parse stops the run before anything is sent"
    );
}

#[test]
fn verify_names_the_seed_that_is_not_idempotent_and_changes_nothing() {
    let s = Seeds::new();
    s.write("common/010_channels.sql", CHANNELS);
    s.write("dev/020_posts.sql", "INSERT INTO posts (channel_id, title) SELECT id, 'hello' FROM channels WHERE slug = 'general';\n");
    let run = s.seed("dev", &["verify"]);
    let result = run.expect(1).json();
    assert_eq!(result["idempotent"], false);
    assert_eq!(result["seeds"][0]["state"], "idempotent");
    assert_eq!(result["seeds"][1]["state"], "not-idempotent");
    assert!(
        run.stderr.contains(
            "dev/020_posts.sql is not idempotent: applying it again changed \"posts\": 1 rows"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(
        s.psql("db_dev", "select count(*) from channels"),
        "0",
        "verify rolls back"
    );
    s.write("dev/020_posts.sql", "INSERT INTO posts (channel_id, title) SELECT id, 'hello' FROM channels c WHERE slug = 'general' AND NOT EXISTS (SELECT 1 FROM posts WHERE title = 'hello');\n");
    assert_eq!(
        s.seed("dev", &["verify"]).expect(0).json()["idempotent"],
        true
    );
}

#[test]
fn an_edited_seed_is_re_applied_only_when_idempotent() {
    let s = Seeds::new();
    s.write("common/010_channels.sql", CHANNELS);
    s.seed("dev", &["apply"]).expect(0);
    // Idempotent edit: one more channel.
    s.write(
        "common/010_channels.sql",
        &CHANNELS.replace("('help', 'Help')", "('help', 'Help'), ('news', 'News')"),
    );
    let run = s.seed("dev", &["apply"]);
    run.expect(0);
    assert!(
        run.stderr
            .contains("re-applied (edited, idempotent) common/010_channels.sql"),
        "{}",
        run.stderr
    );
    assert_eq!(s.psql("db_dev", "select count(*) from channels"), "3");
    // Not idempotent: reported, left alone, exit 1, status says changed.
    s.write(
        "common/010_channels.sql",
        "INSERT INTO posts (channel_id, title) SELECT min(id), 'x' FROM channels;\n",
    );
    let run = s.seed("dev", &["apply"]);
    run.expect(1);
    assert!(run.stderr.contains("is not idempotent"), "{}", run.stderr);
    assert_eq!(s.psql("db_dev", "select count(*) from posts"), "0");
    let status = s.seed("dev", &["status", "--exit-code"]);
    assert_eq!(status.expect(1).json()["seeds"][0]["state"], "changed");
}

#[test]
fn locked_envs_run_only_files_that_opt_in() {
    let s = Seeds::new();
    s.write(
        "common/010_channels.sql",
        &format!("-- dbseed:allow-locked (reference data)\n{CHANNELS}"),
    );
    s.write("common/020_agents.csv", "handle,name\nada,Ada\n");
    let run = s.seed("prod", &["apply"]);
    let result = run.expect(0).json();
    assert_eq!(result["seeds"].as_array().unwrap().len(), 1);
    assert!(
        run.stderr
            .contains("env prod is locked: skipped common/020_agents.csv"),
        "{}",
        run.stderr
    );
    assert_eq!(s.psql("db_prod", "select count(*) from agents"), "0");
    s.write(
        "seeds.toml",
        "[csv.\"common/020_agents.csv\"]\nallow_locked = true\n",
    );
    s.seed("prod", &["apply"]).expect(0);
    assert_eq!(s.psql("db_prod", "select count(*) from agents"), "1");
}

#[test]
fn destructive_seeds_are_lint_findings_on_protected_envs() {
    let s = Seeds::new();
    s.write("common/010_cleanup.sql", "DELETE FROM posts;\n");
    s.seed("test", &["apply"]).expect_error(
        "dbseed",
        3,
        "common/010_cleanup.sql:1: delete-without-where",
    );
    let dev = s.seed("dev", &["apply"]);
    dev.expect(0);
    assert!(
        dev.stderr
            .contains("dbseed: warning: common/010_cleanup.sql:1: delete-without-where"),
        "{}",
        dev.stderr
    );
    s.write(
        "common/010_cleanup.sql",
        "-- dbguard:allow delete-without-where: posts are demo data\nDELETE FROM posts;\n",
    );
    s.seed("test", &["apply"]).expect(0);
}

/// A 300,000-statement seed on TEST (a confirm env, where the lint blocks): judged whole, with
/// the finding on its last line named by that line, and loaded once it is bounded. Before the
/// lint's line lookup was made linear this file never finished linting; the hang guard turns
/// that into a failure instead of a stuck suite.
#[test]
fn a_300_000_statement_seed_is_judged_whole_and_loads_on_test() {
    let s = Seeds::new();
    let mut sql = String::with_capacity(300_000 * 100);
    for n in 1..=300_000 {
        sql.push_str(&format!(
            "INSERT INTO agents (handle, name) VALUES ('agent_{n}', 'Agent; -- {n}') ON CONFLICT (handle) DO NOTHING;\n"
        ));
    }
    let guard = std::time::Duration::from_secs(600);
    let apply = |last: &str| {
        s.write("common/030_agents.sql", &format!("{sql}{last}\n"));
        s.project
            .tool("dbseed")
            .arg_path_flag("--dir", &s.dir.path)
            .args(["apply"])
            .stdin(s.profile("test"))
            .run_within(guard, "dbseed apply of 300,000 statements")
    };
    apply("DELETE FROM posts;").expect_error(
        "dbseed",
        3,
        "common/030_agents.sql:300001: delete-without-where",
    );
    assert_eq!(s.psql("db_test", "select count(*) from agents"), "0");
    apply("DELETE FROM posts WHERE id = 1;").expect(0);
    assert_eq!(
        s.psql(
            "db_test",
            "select count(*), min(handle), max(name) from agents"
        ),
        "300000|agent_1|Agent; -- 99999"
    );
}

#[test]
fn csv_upserts_into_a_table_with_rows_and_updates_by_key_when_asked() {
    let s = Seeds::new();
    s.psql(
        "db_dev",
        "insert into agents (handle, name) values ('ada', 'Old name')",
    );
    s.write("dev/020_agents.csv", "handle,name\nada,Ada\ngrace,Grace\n");
    let run = s.seed("dev", &["apply"]);
    assert_eq!(
        run.expect(0).json()["seeds"][0]["rows"],
        1,
        "ada exists: left alone"
    );
    assert_eq!(
        s.psql("db_dev", "select name from agents where handle = 'ada'"),
        "Old name"
    );
    s.write(
        "seeds.toml",
        "[csv.\"dev/020_agents.csv\"]\nkey = [\"handle\"]\nupdate = true\n",
    );
    s.write(
        "dev/020_agents.csv",
        "handle,name\nada,Ada\ngrace,Grace\nedsger,E\n",
    );
    s.seed("dev", &["apply"]).expect(0);
    assert_eq!(
        s.psql(
            "db_dev",
            "select string_agg(name, ',' order by handle) from agents"
        ),
        "Ada,E,Grace"
    );
    s.write(
        "seeds.toml",
        "[csv.\"dev/missing.csv\"]\nkey = [\"handle\"]\n",
    );
    s.seed("dev", &["apply"]).expect_error(
        "dbseed",
        2,
        "[csv.\"dev/missing.csv\"] names no CSV file",
    );
}

#[test]
fn reset_is_destructive_and_starts_the_seeded_tables_over() {
    let s = Seeds::new();
    s.write("common/010_channels.sql", CHANNELS);
    s.seed("test", &["apply"]).expect(0);
    s.psql("db_test", "insert into channels (slug, title) values ('by-hand', 'x'); insert into posts (channel_id, title) select min(id), 'p' from channels");
    s.seed("test", &["apply", "--reset"])
        .expect_error("dbseed", 3, "add --confirm test");
    assert_eq!(
        s.psql("db_test", "select count(*) from channels"),
        "3",
        "a refusal changes nothing"
    );
    let run = s.seed("test", &["apply", "--reset", "--confirm", "test"]);
    let result = run.expect(0).json();
    assert_eq!(result["reset"], true);
    let truncated: Vec<&str> = result["truncated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        truncated,
        ["channels", "posts"],
        "CASCADE reaches posts through its foreign key"
    );
    assert_eq!(s.psql("db_test", "select count(*) from channels"), "2");
    assert_eq!(s.psql("db_test", "select count(*) from posts"), "0");
    let audit = s
        .project
        .tool("dbguard")
        .args(["audit", "--env", "test"])
        .run();
    let entries = audit.expect(0).json()["entries"].clone();
    let actions: Vec<(&str, &str)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [("seed-reset", "refused"), ("seed-reset", "allowed")]
    );
}

const SLOW_AGENTS: &str = "SELECT pg_sleep(2);\nINSERT INTO agents (handle, name) VALUES ('ada', 'Ada') ON CONFLICT (handle) DO NOTHING;\n";

fn assert_seeded_once(seeds: &Seeds) {
    assert_eq!(seeds.psql("db_dev", "select count(*) from channels"), "2");
    assert_eq!(seeds.psql("db_dev", "select count(*) from agents"), "1");
    seeds.seed("dev", &["status", "--exit-code"]).expect(0);
}

/// dbseed killed with SIGKILL while a seed runs: nothing half-applied stays, and the rerun
/// applies everything exactly once.
#[test]
fn kill_9_mid_seed_then_rerun_converges() {
    let seeds = Seeds::new();
    seeds.write("common/010_channels.sql", CHANNELS);
    seeds.write("common/020_agents.sql", SLOW_AGENTS);
    let mut child = std::process::Command::new(harness::bin("dbseed"))
        // The profile names libpq's PGPASSWORD as its secret (as Tool::new gives it).
        .env("PGPASSWORD", harness::SUPERUSER_PASSWORD)
        .arg("--dir")
        .arg(&seeds.dir.path)
        .arg("apply")
        .current_dir(seeds.project.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        seeds.profile("dev").as_bytes(),
    )
    .unwrap();
    drop(child.stdin.take());
    seeds.pg.wait_until_sleeping("dbseed");
    harness::kill_9(&mut child, "dbseed apply"); // inside the pg_sleep
                                                 // Only once the killed session is gone can nothing of it commit late: then it left nothing.
    seeds.pg.wait_until_no_session("dbseed");
    assert_eq!(seeds.psql("db_dev", "select count(*) from agents"), "0");
    seeds.seed("dev", &["apply"]).expect(0);
    assert_seeded_once(&seeds);
}

/// The connection drops while a seed runs: exit 4, nothing of that seed stays, the rerun
/// converges.
#[test]
fn a_connection_cut_mid_seed_is_exit_4_and_a_rerun_converges() {
    let seeds = Seeds::new();
    seeds.write("common/010_channels.sql", CHANNELS);
    seeds.write("common/020_agents.sql", SLOW_AGENTS);
    let proxy = harness::CutProxy::start(seeds.pg.port);
    let mut profile: serde_json::Value = serde_json::from_str(&seeds.profile("dev")).unwrap();
    profile["conn"]["port"] = proxy.port.into();
    let runner = {
        let dir = seeds.dir.path.clone();
        let project = seeds.project.path().to_path_buf();
        std::thread::spawn(move || {
            Tool::new("dbseed")
                .arg_path_flag("--dir", &dir)
                .args(["apply"])
                .current_dir(&project)
                .stdin(profile.to_string())
                .run()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(800));
    proxy.cut();
    let run = runner.join().unwrap();
    assert_eq!(run.code, 4, "{}", run.stderr);
    let last = run.stderr.lines().last().unwrap();
    assert!(
        last.starts_with("dbseed: common/020_agents.sql: the connection was closed")
            && last.ends_with("run the same command again"),
        "{}",
        run.stderr
    );
    // The server's side of the cut session may still be in its pg_sleep: only once it is gone
    // can nothing of it commit late.
    seeds.pg.wait_until_no_session("dbseed");
    assert_eq!(seeds.psql("db_dev", "select count(*) from agents"), "0");
    seeds.seed("dev", &["apply"]).expect(0);
    assert_seeded_once(&seeds);
}

/// Two `dbseed apply` at once on a 200 000-row CSV into a table without a key (nothing but the
/// record stops a second load): the seed lock makes one wait, say who it waits for, and then
/// find the file applied. Without the lock both load it (400 000 rows).
#[test]
fn two_applies_at_once_load_a_csv_once() {
    let s = Seeds::new();
    s.psql(
        "db_dev",
        "create table readings (n int not null, label text not null)",
    );
    // The first file keeps whichever run takes the lock busy for two seconds, so the other
    // waits longer than the one second after which it says so.
    s.write("common/010_pause.sql", "SELECT pg_sleep(2);\n");
    let mut csv = String::from("n,label\n");
    for n in 0..200_000 {
        csv.push_str(&format!("{n},reading {n}\n"));
    }
    s.write("common/020_readings.csv", &csv);
    let runs: Vec<harness::Run> = [0, 1]
        .map(|_| {
            let tool = s
                .project
                .tool("dbseed")
                .arg_path_flag("--dir", &s.dir.path)
                .args(["apply"])
                .stdin(s.profile("dev"));
            std::thread::spawn(move || tool.run())
        })
        .into_iter()
        .map(|run| run.join().unwrap())
        .collect();
    for run in &runs {
        run.expect(0);
    }
    assert_eq!(s.psql("db_dev", "select count(*) from readings"), "200000");
    let loaded: Vec<&harness::Run> = runs
        .iter()
        .filter(|run| {
            run.json()["seeds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["file"] == "common/020_readings.csv" && e["rows"] == 200_000)
        })
        .collect();
    assert_eq!(loaded.len(), 1, "{runs:#?}");
    let waited = runs
        .iter()
        .find(|run| !std::ptr::eq(*run, loaded[0]))
        .unwrap();
    assert_eq!(
        waited.json()["seeds"].as_array().unwrap().len(),
        0,
        "{}",
        waited.stdout
    );
    let target = format!("127.0.0.1:{}/db_dev", s.pg.port);
    assert!(
        waited.stderr.contains(&format!(
            "dbseed: waiting for another dbseed on {target} (pid "
        )),
        "{}",
        waited.stderr
    );
    assert!(
        waited.stderr.contains(
            "which applied common/010_pause.sql, common/020_readings.csv: already applied, so not loaded again"
        ),
        "{}",
        waited.stderr
    );
    assert!(
        !loaded[0].stderr.contains("waiting for another dbseed"),
        "{}",
        loaded[0].stderr
    );
}
