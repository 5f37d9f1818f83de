//! The guard held against the routes an attacker (or a tired user with a wrong config line)
//! took around it, each on real PostgreSQL: a destroy through a mis-aimed env, a piped profile
//! claiming less protection than the database's stamp, a re-stamp confirmed with the wrong
//! env's name, an app role rewriting the guard's own tables, and copies (logical and physical)
//! that are adopted, never silently written to. Also the verdict matrix's stamp × config ×
//! profile dimension, and the line naming a protected target before a write.

use dbtools::contract::SslMode;
use harness::{PgCluster, Project, Run, Tls, Tool, LOCAL_DEV_TEST};
use serde_json::{json, Value};
use std::path::Path;

/// A profile for `env` at database `db` of the cluster, claiming `protection`.
fn claim(pg: &PgCluster, env: &str, db: &str, protection: &str) -> String {
    let mut conn = pg.conn(SslMode::Disable);
    conn.dbname = db.into();
    json!({"kind": "dbtools.profile/v2", "env": env, "protection": protection, "app": "harness", "conn": conn, "secret": {"source": "env", "ref": "PGPASSWORD"}})
        .to_string()
}

fn guard_check(stdin: String, action: &str, extra: &[&str]) -> Run {
    Tool::new("dbguard")
        .args(["check", "--action", action])
        .args(extra)
        .stdin(stdin)
        .run()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs SQL on a local instance's database as its master (superuser) or an env's app role,
/// with psql over verify-full TLS; the password from the local secret store.
fn psql_local(project: &Project, instance: &str, db: &str, secret: &str, sql: &str) -> Run {
    let record = read_json(
        &project
            .state()
            .join(format!("local/{instance}/instance.json")),
    );
    let stored = read_json(
        &project
            .state()
            .join(format!("secrets/{instance}/{secret}.json")),
    );
    Tool::program("psql")
        .args(["-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGHOST", record["endpoint"]["host"].as_str().unwrap())
        .env("PGPORT", record["endpoint"]["port"].to_string())
        .env("PGUSER", stored["username"].as_str().unwrap())
        .env("PGPASSWORD", stored["password"].as_str().unwrap())
        .env("PGDATABASE", db)
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", record["ca_cert"].as_str().unwrap())
        .run()
}

fn rewrite_config(project: &Project, text: &str) {
    std::fs::write(project.path().join("dbtools.toml"), text).unwrap();
}

/// `[env.dev]` aimed at TEST's instance and database; TEST moved to another instance name.
fn mis_aimed() -> String {
    LOCAL_DEV_TEST
        .replace(
            "instance = \"combine-test\"\ndatabase = \"combine_test\"",
            "instance = \"combine-elsewhere\"\ndatabase = \"combine_test\"",
        )
        .replace(
            "instance = \"combine-dev\"\ndatabase = \"combine_dev\"",
            "instance = \"combine-test\"\ndatabase = \"combine_test\"",
        )
        + "[instance.combine-elsewhere]\nprovider = \"local\"\n"
}

/// Route 1: `[env.dev]` aimed at TEST's instance and database, TEST moved to another instance
/// name. Before: `rdsprov destroy --env dev` (no confirm at all) deleted TEST's instance. Now
/// the stamps on the instance decide — read live while it runs, from its record when stopped,
/// and an instance with no record counts as locked.
#[test]
fn destroy_through_a_mis_aimed_env_confirms_the_env_whose_data_is_there() {
    let project = Project::local_dev_test();
    project.apply();
    rewrite_config(&project, &mis_aimed());
    let test_dir = project.state().join("local/combine-test");
    for confirm in [None, Some("dev")] {
        let mut args = vec!["destroy", "--env", "dev"];
        if let Some(typed) = confirm {
            args.extend(["--confirm", typed]);
        }
        project
            .tool("rdsprov")
            .args(&args)
            .run()
            .expect_error("rdsprov", 3, "it holds the data of env test (confirm)")
            .expect_error("rdsprov", 3, "add --confirm test");
        assert!(
            test_dir.join("instance.json").exists(),
            "TEST's instance survived"
        );
    }
    // TEST's app role owns its database, so it can switch its connections off (from
    // template1) and hide its stamp from the live read: then it counts as locked.
    let as_test_app = |sql: &str| {
        psql_local(&project, "combine-test", "template1", "combine_app", sql).expect(0);
    };
    as_test_app("alter database combine_test allow_connections false");
    project
        .tool("rdsprov")
        .args(["destroy", "--env", "dev", "--confirm", "test"])
        .run()
        .expect_error("rdsprov", 3, "add --break-glass");
    assert!(test_dir.join("instance.json").exists());
    as_test_app("alter database combine_test allow_connections true");
    // Stopped: its databases cannot be read, the instance record says what is on it.
    project
        .tool("rdsprov")
        .args(["stop", "--env", "dev"])
        .run()
        .expect(0);
    project
        .tool("rdsprov")
        .args(["destroy", "--env", "dev", "--confirm", "dev"])
        .run()
        .expect_error("rdsprov", 3, "add --confirm test");
    assert!(test_dir.join("data").exists());
    // The refusals are in the audit, under the env that was used.
    let audit = project
        .tool("dbguard")
        .args(["audit", "--json"])
        .run()
        .expect(0)
        .json();
    let refused = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "destroy" && e["outcome"] == "refused")
        .count();
    assert_eq!(refused, 4, "{audit}");
    // Naming the env at risk is what lets it go.
    project
        .tool("rdsprov")
        .args(["destroy", "--env", "dev", "--confirm", "test"])
        .run()
        .expect(0);
    assert!(!test_dir.exists());

    // An instance with no record at all counts as locked.
    rewrite_config(&project, LOCAL_DEV_TEST);
    std::fs::remove_file(project.state().join("local/combine-dev/instance.json")).unwrap();
    project
        .tool("rdsprov")
        .args(["destroy", "--env", "dev"])
        .run()
        .expect_error("rdsprov", 3, "dev (locked)");
    project
        .tool("rdsprov")
        .args(["destroy", "--env", "dev", "--confirm", "dev"])
        .run()
        .expect_error("rdsprov", 3, "add --break-glass");
    assert!(project.state().join("local/combine-dev/data").exists());
    project
        .tool("rdsprov")
        .args([
            "destroy",
            "--env",
            "dev",
            "--confirm",
            "dev",
            "--break-glass",
            "record lost in a disk swap",
        ])
        .run()
        .expect(0);
}

/// Route 2: outside a project, a TEST profile edited to "open" ran destructive actions with no
/// confirm. Now the default by env name and the database's own stamp still apply.
#[test]
fn a_piped_profile_cannot_claim_less_than_the_name_or_the_stamp() {
    let pg = PgCluster::start(Tls::None);
    for db in ["db_test", "db_staging"] {
        pg.psql("postgres", &format!("create database {db}"));
    }
    pg.stamp("db_test", "test");
    // A stamp written at locked (its env's config said so at the time).
    let project = Project::new(&pg.envs_config(&[("staging", "locked")]));
    project
        .tool("dbguard")
        .args(["stamp", "staging"])
        .env("PW", harness::SUPERUSER_PASSWORD)
        .run()
        .expect(0);
    assert_eq!(
        pg.psql("db_staging", "select protection from dbtools.env_stamp"),
        "locked"
    );

    let open_test = claim(&pg, "test", "db_test", "open");
    guard_check(open_test.clone(), "drop", &[]).expect_error("dbguard", 3, "add --confirm test");
    guard_check(open_test.clone(), "drop", &["--confirm", "test"]).expect(0);
    Tool::new("dbmigrate")
        .args(["down"])
        .stdin(open_test.clone())
        .run()
        .expect_error("dbmigrate", 3, "add --confirm test");
    Tool::new("dbseed")
        .args(["apply", "--reset", "--dir"])
        .arg_path(&harness::repo_root().join("seeds"))
        .stdin(open_test)
        .run()
        .expect_error("dbseed", 3, "add --confirm test");

    // The stamp wins over the name: staging's own stamp says locked.
    let open_staging = claim(&pg, "staging", "db_staging", "open");
    guard_check(open_staging.clone(), "drop", &["--confirm", "staging"]).expect_error(
        "dbguard",
        3,
        "the database's own stamp says locked",
    );
    let allowed = guard_check(
        open_staging,
        "drop",
        &["--confirm", "staging", "--break-glass", "planned rebuild"],
    )
    .expect(0)
    .json();
    assert_eq!(allowed["protection"], "locked");
    assert_eq!(allowed["stamp"]["protection"], "locked");
}

/// Route 3: `dbguard stamp dev --confirm dev` re-stamped TEST's (and with --break-glass
/// PROD's) database as dev. Now the env whose data is at risk is the one confirmed.
#[test]
fn restamping_confirms_the_env_that_loses_the_database() {
    let pg = PgCluster::start(Tls::None);
    let project =
        Project::new(&pg.envs_config(&[("dev", "open"), ("test", "confirm"), ("prod", "locked")]));
    for env in ["test", "prod"] {
        pg.psql("postgres", &format!("create database db_{env}"));
        pg.stamp(&format!("db_{env}"), env);
    }
    let dev_at = |db: &str| claim(&pg, "dev", db, "open");
    let stamp = |db: &str, extra: &[&str]| {
        project
            .tool("dbguard")
            .args(["stamp"])
            .args(extra)
            .env("PW", harness::SUPERUSER_PASSWORD)
            .stdin(dev_at(db))
            .run()
    };
    stamp("db_test", &["--confirm", "dev"]).expect_error(
        "dbguard",
        3,
        "type --confirm test exactly",
    );
    stamp("db_prod", &["--confirm", "dev", "--break-glass", "x"]).expect_error(
        "dbguard",
        3,
        "type --confirm prod exactly",
    );
    stamp("db_prod", &["--confirm", "prod"]).expect_error("dbguard", 3, "add --break-glass");
    assert_eq!(
        pg.psql("db_test", "select env from dbtools.env_stamp"),
        "test"
    );
    assert_eq!(
        pg.psql("db_prod", "select env from dbtools.env_stamp"),
        "prod"
    );
    // The audit names the env that was at risk.
    let audit = project
        .tool("dbguard")
        .args(["audit", "--json"])
        .run()
        .expect(0)
        .json();
    let envs: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["env"].as_str().unwrap())
        .collect();
    assert_eq!(envs, ["test", "prod", "prod"]);
    // The owning env's own confirmation is the deliberate path, and it works.
    stamp("db_test", &["--confirm", "test"]).expect(0);
    assert_eq!(
        pg.psql("db_test", "select env from dbtools.env_stamp"),
        "dev"
    );
}

/// Route 5: the app role owned the guard's tables, so a seed rewrote the stamp and emptied the
/// audit. Now the instance's master owns the `dbtools` schema; app roles read the stamp and
/// append to the audit through a SECURITY DEFINER function only. A schema an app role created
/// (before this version) is taken over by `rdsprov apply`.
#[test]
fn app_roles_cannot_rewrite_the_stamp_or_the_audit() {
    let project = Project::local_dev_test();
    project.apply();
    let as_app =
        |sql: &str| psql_local(&project, "combine-test", "combine_test", "combine_app", sql);
    for sql in [
        "update dbtools.env_stamp set env = 'dev'",
        "delete from dbtools.env_stamp",
        "delete from dbtools.audit",
        "truncate dbtools.audit",
        "insert into dbtools.audit (by, tool, action, class, env, outcome, target) values ('x', 'x', 'x', 'x', 'x', 'x', 'x')",
        "drop schema dbtools cascade",
        "drop table dbtools.env_stamp",
        "alter table dbtools.env_stamp rename to gone",
        "create table dbtools.mine (x int)",
    ] {
        let run = as_app(sql);
        assert_eq!(run.code, 1, "{sql} was not refused: {run:?}");
        assert!(
            run.stderr.contains("permission denied") || run.stderr.contains("must be owner"),
            "{sql}: {}",
            run.stderr
        );
    }
    assert_eq!(
        as_app("select env, protection from dbtools.env_stamp")
            .expect(0)
            .stdout
            .trim(),
        "test|confirm"
    );
    as_app("select dbtools.append_audit(now(), 'me', 'psql', 'note', 'read', 'test', 'allowed', null, 'here')")
        .expect(0);
    assert_eq!(
        as_app("select count(*) from dbtools.audit where by = 'me'")
            .expect(0)
            .stdout
            .trim(),
        "1"
    );

    // A function the app role plants to answer for a built-in (an exact-type overload wins
    // over pg_catalog's polymorphic one whatever the search path): it must neither fool the
    // assertion nor ever run with the master's rights when the master reads the stamp.
    as_app(
        "create function public.to_jsonb(s dbtools.env_stamp) returns jsonb language plpgsql as $$ \
         begin if (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then \
         execute 'create table if not exists public.ran_as_superuser (x int)'; end if; \
         return pg_catalog.to_jsonb(s) || '{\"env\":\"dev\",\"protection\":\"open\"}'::jsonb; end $$",
    )
    .expect(0);
    let mut aimed: Value = serde_json::from_str(&project.profile("test")).unwrap();
    aimed["env"] = "dev".into();
    aimed["protection"] = "open".into();
    // TEST's app password where libpq reads it (a piped profile may name no other secret
    // outside a project).
    let app = read_json(
        &project
            .state()
            .join("secrets/combine-test/combine_app.json"),
    );
    aimed["secret"] = json!({"source": "env", "ref": "PGPASSWORD"});
    Tool::new("dbguard")
        .args(["check", "--action", "destructive"])
        .env("PGPASSWORD", app["password"].as_str().unwrap())
        .stdin(aimed.to_string())
        .run()
        .expect_error("dbguard", 3, "is stamped test");
    project.apply();
    project
        .tool("dbguard")
        .args(["stamp", "test"])
        .run()
        .expect(0);
    assert_eq!(
        as_app("select pg_catalog.to_regclass('public.ran_as_superuser') is null")
            .expect(0)
            .stdout
            .trim(),
        "t",
        "the app role's function ran as the master"
    );

    // An older database whose dbtools schema the app role created: apply moves it to the
    // master and the same UPDATE is refused afterwards.
    let as_master = |sql: &str| psql_local(&project, "combine-dev", "combine_dev", "master", sql);
    as_master("drop schema dbtools cascade").expect(0);
    psql_local(
        &project,
        "combine-dev",
        "combine_dev",
        "combine_app",
        "create schema dbtools; create table dbtools.env_stamp (singleton boolean primary key default true check (singleton), env text not null, app text, stamped_by text not null, stamped_at timestamptz not null default now(), tool text not null); insert into dbtools.env_stamp (env, stamped_by, tool) values ('dev', 'old', 'dbguard')",
    )
    .expect(0);
    // Until it is upgraded, writes to it are refused with the command that upgrades it.
    project
        .tool("dbguard")
        .args(["check", "--env", "dev", "--action", "write"])
        .run()
        .expect_error("dbguard", 3, "carries a stamp written by an older dbtools")
        .expect_error("dbguard", 3, "`rdsprov apply`");
    let applied = project.apply();
    let changes = applied["changes"].to_string();
    assert!(
        changes.contains("brought the stamp of database combine_dev up to date"),
        "{changes}"
    );
    assert_eq!(
        as_master("select pg_get_userbyid(nspowner) from pg_namespace where nspname = 'dbtools'")
            .expect(0)
            .stdout
            .trim(),
        "postgres"
    );
    let run = psql_local(
        &project,
        "combine-dev",
        "combine_dev",
        "combine_app",
        "update dbtools.env_stamp set env = 'test'",
    );
    assert!(
        run.code == 1 && run.stderr.contains("permission denied"),
        "{run:?}"
    );
    // A second apply changes nothing.
    let again = project.apply();
    assert_eq!(again["changes"], json!([]), "{again}");
}

/// Copies made by a logical route (`CREATE DATABASE … TEMPLATE`, `pg_dump | psql`) carry the
/// stamp of their source: nothing is written to them until the env that owns them adopts them,
/// and the original is never adopted.
#[test]
fn logical_copies_are_adopted_and_the_original_never_is() {
    let pg = PgCluster::start(Tls::None);
    let project = Project::new(&pg.envs_config(&[
        ("dev", "open"),
        ("test", "confirm"),
        ("other", "confirm"),
    ]));
    pg.psql("postgres", "create database db_test");
    pg.stamp("db_test", "test");
    pg.psql(
        "db_test",
        "create table t (id int primary key); insert into t values (1)",
    );
    pg.psql("postgres", "create database db_dev template db_test");
    let tool = |name: &str| project.tool(name).env("PW", harness::SUPERUSER_PASSWORD);

    // A copy stamped for the same env is still a copy.
    pg.psql("postgres", "create database db_test_copy template db_test");
    guard_check(claim(&pg, "test", "db_test_copy", "confirm"), "write", &[]).expect_error(
        "dbguard",
        3,
        "is a copy: its test stamp was written in database db_test",
    );

    // The template clone for dev: refused (stamped test), adopted by dev, then writable.
    tool("dbguard")
        .args(["check", "--env", "dev", "--action", "write"])
        .run()
        .expect_error("dbguard", 3, "`dbguard adopt dev`");
    let adopted = tool("dbguard")
        .args(["adopt", "dev"])
        .run()
        .expect(0)
        .json();
    assert_eq!(adopted["stamp"]["env"], "dev");
    assert!(adopted["stamp"]["adopted_from"]
        .as_str()
        .unwrap()
        .starts_with("test (a copy of database db_test"));
    tool("dbguard")
        .args(["check", "--env", "dev", "--action", "write"])
        .run()
        .expect(0);

    // The original: adopting it for dev is refused, however it is reached.
    guard_check(claim(&pg, "dev", "db_test", "open"), "write", &[]).expect_error(
        "dbguard",
        3,
        "is stamped test",
    );
    tool("dbguard")
        .args(["adopt"])
        .stdin(claim(&pg, "dev", "db_test", "open"))
        .run()
        .expect_error("dbguard", 3, "is not a copy");
    assert_eq!(
        pg.psql("db_test", "select env from dbtools.env_stamp"),
        "test"
    );
}

/// A dump of TEST's database loaded into another (`pg_dump | psql`) carries TEST's stamp with
/// TEST's identity: `other` adopts it with its own confirmation. (pg_dump refuses a server
/// newer than itself and the PostgreSQL 16 pass has only the machine's pg_dump 15, so
/// `make test` skips this one there by name, like `dump_is_deterministic`.)
#[test]
fn a_dump_loaded_elsewhere_is_adopted() {
    let pg = PgCluster::start(Tls::None);
    let project = Project::new(&pg.envs_config(&[("test", "confirm"), ("other", "confirm")]));
    pg.psql("postgres", "create database db_test");
    pg.stamp("db_test", "test");
    pg.psql(
        "db_test",
        "create table t (id int primary key); insert into t values (1)",
    );
    let tool = |name: &str| project.tool(name).env("PW", harness::SUPERUSER_PASSWORD);
    pg.psql("postgres", "create database db_other");
    let dump = Tool::program("bash")
        .args([
            "-c",
            &format!(
                "set -o pipefail; pg_dump -h 127.0.0.1 -p {port} -U postgres db_test | psql -XAtq -v ON_ERROR_STOP=1 -h 127.0.0.1 -p {port} -U postgres db_other",
                port = pg.port
            ),
        ])
        .env("PGPASSWORD", harness::SUPERUSER_PASSWORD)
        .run();
    assert_eq!(dump.code, 0, "pg_dump | psql: {}", dump.stderr);
    tool("dbguard")
        .args(["check", "--env", "other", "--action", "write"])
        .run()
        .expect_error("dbguard", 3, "is stamped test");
    tool("dbguard").args(["adopt", "other"]).run().expect_error(
        "dbguard",
        3,
        "add --confirm other",
    );
    tool("dbguard")
        .args(["adopt", "other", "--confirm", "other"])
        .run()
        .expect(0);
    assert_eq!(
        pg.psql("db_other", "select env from dbtools.env_stamp"),
        "other"
    );
    assert_eq!(pg.psql("db_other", "select count(*) from t"), "1");
}

/// Rewrites the `port` line of a cluster's config files (a copied data directory keeps its
/// source's port).
fn set_port(data: &Path, port: u16) {
    for name in ["dbtools.conf", "postgresql.conf", "postgresql.auto.conf"] {
        let path = data.join(name);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let text: String = text
            .lines()
            .map(|line| {
                if line.trim_start().starts_with("port =") {
                    format!("port = {port}\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        std::fs::write(&path, text).unwrap();
    }
}

/// A physical copy (TEST's data directory copied into DEV's instance, as a snapshot restored for
/// DEV would be) keeps the cluster's identity and the stamp's nonce, but DEV's instance record
/// does not list that nonce: it is adopted for dev. TEST's own database, reached through a dev
/// env aimed at TEST's instance, is not.
#[test]
fn physical_copies_are_told_from_the_original_by_the_instance_record() {
    let project = Project::local_dev_test();
    project.apply();
    for env in ["dev", "test"] {
        project
            .tool("rdsprov")
            .args(["stop", "--env", env])
            .run()
            .expect(0);
    }
    let local = project.state().join("local");
    let record = read_json(&local.join("combine-dev/instance.json"));
    let dev_port = record["endpoint"]["port"].as_u64().unwrap() as u16;
    let copy = Tool::program("bash")
        .args([
            "-c",
            "set -e; rm -rf combine-dev/data; cp -a combine-test/data combine-dev/data; \
             cp -p ../secrets/combine-test/master.json ../secrets/combine-dev/master.json",
        ])
        .current_dir(&local)
        .run();
    assert_eq!(copy.code, 0, "{}", copy.stderr);
    set_port(&local.join("combine-dev/data"), dev_port);
    for env in ["dev", "test"] {
        project
            .tool("rdsprov")
            .args(["start", "--env", env])
            .run()
            .expect(0);
    }
    // DEV now serves TEST's database (name, role and password came with the copy).
    let restored = LOCAL_DEV_TEST.replace(
        "instance = \"combine-dev\"\ndatabase = \"combine_dev\"\nuser = \"combine_app\"",
        "instance = \"combine-dev\"\ndatabase = \"combine_test\"\nuser = \"combine_app\"\nsecret = \"local:combine-test/combine_app\"",
    );
    rewrite_config(&project, &restored);
    project
        .tool("dbguard")
        .args(["check", "--env", "dev", "--action", "write"])
        .run()
        .expect_error("dbguard", 3, "is stamped test");
    let adopted = project
        .tool("dbguard")
        .args(["adopt", "dev"])
        .run()
        .expect(0)
        .json();
    assert!(
        adopted["stamp"]["adopted_from"]
            .as_str()
            .unwrap()
            .contains("a physical copy"),
        "{adopted}"
    );
    project
        .tool("dbguard")
        .args(["check", "--env", "dev", "--action", "write"])
        .run()
        .expect(0);
    // The record now lists the adopted stamp, so the copy is DEV's original from here on.
    let record = read_json(&local.join("combine-dev/instance.json"));
    let listed = record["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "combine_test")
        .unwrap();
    assert_eq!(listed["stamp"]["env"], "dev", "{record}");

    // TEST's own database through a dev env aimed at TEST's instance: not a copy.
    rewrite_config(&project, &mis_aimed());
    project
        .tool("dbguard")
        .args(["adopt", "dev"])
        .run()
        .expect_error("dbguard", 3, "its instance records that stamp");
    // A record that lists the database without its stamp (edited by hand) proves nothing.
    let test_record = local.join("combine-test/instance.json");
    let original = std::fs::read_to_string(&test_record).unwrap();
    let mut edited: Value = serde_json::from_str(&original).unwrap();
    for database in edited["databases"].as_array_mut().unwrap() {
        database.as_object_mut().unwrap().remove("stamp");
    }
    std::fs::write(&test_record, edited.to_string()).unwrap();
    project
        .tool("dbguard")
        .args(["adopt", "dev"])
        .run()
        .expect_error("dbguard", 3, "nothing shows it was copied");
    std::fs::write(&test_record, &original).unwrap();
    // A fake instance whose record is a copy of TEST's (TEST's endpoint and master secret)
    // speaks for nothing.
    let fake = mis_aimed().replacen(
        "instance = \"combine-test\"\ndatabase = \"combine_test\"\nuser = \"combine_app\"",
        "instance = \"a-fake\"\ndatabase = \"combine_test\"\nuser = \"combine_app\"\nsecret = \"local:combine-test/combine_app\"",
        1,
    ) + "[instance.a-fake]\nprovider = \"local\"\n";
    rewrite_config(&project, &fake);
    std::fs::create_dir_all(local.join("a-fake")).unwrap();
    let mut forged: Value = serde_json::from_str(&original).unwrap();
    forged["id"] = "a-fake".into();
    forged["databases"] = json!([]);
    std::fs::write(local.join("a-fake/instance.json"), forged.to_string()).unwrap();
    project
        .tool("dbguard")
        .args(["adopt", "dev"])
        .run()
        .expect_error("dbguard", 3, "it is not a-fake's own");
    std::fs::remove_dir_all(local.join("a-fake")).unwrap();
    // TEST is untouched and still TEST's.
    rewrite_config(&project, LOCAL_DEV_TEST);
    project
        .tool("dbguard")
        .args(["check", "--env", "test", "--action", "write"])
        .run()
        .expect(0);
}

/// The verdict's stamp × config × profile dimension: for a destructive action on env dev (open
/// by name), the level that applies is the strictest of the stamp's, the config's and the
/// piped profile's, whichever of them says it.
#[test]
fn the_strictest_of_stamp_config_and_profile_decides() {
    let pg = PgCluster::start(Tls::None);
    pg.psql("postgres", "create database db_dev");
    pg.stamp("db_dev", "dev");
    let levels = ["open", "confirm", "locked"];
    let rank = |level: &str| levels.iter().position(|l| *l == level).unwrap();
    let mut checked = 0;
    for config_level in levels {
        let project = Project::new(&pg.envs_config(&[("dev", config_level)]));
        for stamp_level in levels {
            pg.psql(
                "db_dev",
                &format!("update dbtools.env_stamp set protection = '{stamp_level}'"),
            );
            for profile_level in levels {
                let strictest = [config_level, stamp_level, profile_level]
                    .into_iter()
                    .max_by_key(|l| rank(l))
                    .unwrap();
                for (typed, allowed_from) in [
                    (vec![], 0),
                    (vec!["--confirm", "dev"], 1),
                    (vec!["--confirm", "dev", "--break-glass", "matrix"], 2),
                ] {
                    let run = project
                        .tool("dbguard")
                        .args(["check", "--action", "drop"])
                        .args(&typed)
                        .env("PW", harness::SUPERUSER_PASSWORD)
                        .stdin(claim(&pg, "dev", "db_dev", profile_level))
                        .run();
                    let expected = if rank(strictest) <= allowed_from {
                        0
                    } else {
                        3
                    };
                    assert_eq!(
                        run.code, expected,
                        "config {config_level}, stamp {stamp_level}, profile {profile_level}, typed {typed:?}: {}",
                        run.stderr
                    );
                    if expected == 0 {
                        assert_eq!(run.json()["protection"], strictest);
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 81);
}

/// Before a write to a protected env, one stderr line names the target as the database itself
/// reports it: env and level from the stamp, host:port/database, who stamped it and when.
#[test]
fn a_write_to_a_protected_env_names_its_target_first() {
    let pg = PgCluster::start(Tls::None);
    let project = Project::new(&pg.envs_config(&[("dev", "open"), ("test", "confirm")]));
    for env in ["dev", "test"] {
        pg.psql("postgres", &format!("create database db_{env}"));
        pg.stamp(&format!("db_{env}"), env);
    }
    let run = project
        .tool("dbmigrate")
        .args(["up", "--env", "test", "--dir"])
        .arg_path(&harness::repo_root().join("migrations"))
        .env("PW", harness::SUPERUSER_PASSWORD)
        .run();
    run.expect(0);
    let first = run.stderr.lines().next().unwrap_or_default();
    let target = format!("127.0.0.1:{}/db_test", pg.port);
    assert!(
        first.starts_with("dbmigrate: migrate on env test (confirm): ")
            && first.contains(&target)
            && first.contains("stamped test by "),
        "{}",
        run.stderr
    );
    let run = project
        .tool("dbmigrate")
        .args(["up", "--env", "dev", "--dir"])
        .arg_path(&harness::repo_root().join("migrations"))
        .env("PW", harness::SUPERUSER_PASSWORD)
        .run();
    run.expect(0);
    assert!(!run.stderr.contains("on env dev ("), "{}", run.stderr);
}
