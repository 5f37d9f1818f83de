//! The lint's walk-arounds, end to end on real PostgreSQL: migrations that once ran on a
//! confirm env with zero findings and destroyed data (`DROP OWNED BY CURRENT_USER` in a
//! `transaction:false` section, `EXPLAIN ANALYZE DELETE`) are refused by `dbmigrate up` before
//! anything runs, and the table they aimed at keeps its rows. Role statements are refused on
//! open envs too, and SQL touching the guard's `dbtools` schema even with an opt-in comment.

use dbtools::contract::SslMode;
use harness::{PgCluster, Project, Run, Tls};

/// dev (open) and test (confirm) on one cluster, each its own database.
fn project(pg: &PgCluster) -> Project {
    let config = pg.envs_config(&[("dev", "open"), ("test", "confirm")]);
    Project::new(&format!("app = \"guarded\"\n{config}"))
}

fn profile(pg: &PgCluster, env: &str, db: &str) -> String {
    let mut conn = pg.conn(SslMode::Disable);
    conn.dbname = db.into();
    pg.profile(env, &conn)
}

/// `dbmigrate up` on `env` with one migration file holding `body`.
fn up_with(pg: &PgCluster, project: &Project, env: &str, name: &str, body: &str) -> Run {
    let dir = harness::TempDir::new("lint-e2e");
    std::fs::write(dir.path.join(name), body).unwrap();
    project
        .tool("dbmigrate")
        .args(["up"])
        .arg_path_flag("--dir", &dir.path)
        .stdin(profile(pg, env, &format!("db_{env}")))
        .run()
}

fn rows(pg: &PgCluster, db: &str) -> String {
    pg.psql(db, "select count(*) from keep")
}

#[test]
fn migrate_up_refuses_the_walk_arounds_and_the_table_survives() {
    let pg = PgCluster::start(Tls::None);
    let project = project(&pg);
    for env in ["dev", "test"] {
        let db = format!("db_{env}");
        pg.psql("postgres", &format!("create database {db}"));
        pg.stamp(&db, env);
        pg.psql(
            &db,
            "create table keep (id int primary key); insert into keep select generate_series(1, 10)",
        );
    }

    let drop_owned =
        "-- migrate:up transaction:false\nDROP OWNED BY CURRENT_USER;\n-- migrate:down\n";
    up_with(&pg, &project, "test", "1_cleanup.sql", drop_owned).expect_error(
        "dbmigrate",
        3,
        "1_cleanup.sql:2: role: ",
    );
    assert_eq!(rows(&pg, "db_test"), "10");
    // Role statements reach the whole server: refused on the open env as well.
    up_with(&pg, &project, "dev", "1_cleanup.sql", drop_owned).expect_error(
        "dbmigrate",
        3,
        "env dev is open, but role blocks on every env: ",
    );
    assert_eq!(rows(&pg, "db_dev"), "10");

    let explain = "-- migrate:up\nEXPLAIN ANALYZE DELETE FROM keep;\n-- migrate:down\n";
    up_with(&pg, &project, "test", "2_explain.sql", explain).expect_error(
        "dbmigrate",
        3,
        "2_explain.sql:2: delete-without-where: ",
    );
    assert_eq!(rows(&pg, "db_test"), "10");

    // The guard's own schema: an opt-in for the other rules does not let it through.
    let guard_schema = "-- migrate:up\n-- dbguard:allow delete-without-where: tidy up\nDELETE FROM dbtools.audit WHERE true;\n-- migrate:down\n";
    up_with(&pg, &project, "dev", "3_audit.sql", guard_schema).expect_error(
        "dbmigrate",
        3,
        "this cannot be opted in",
    );
}
