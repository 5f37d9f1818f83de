//! dbmate's `create`, `drop` and `load` on the local provider's instances: the database made
//! by the instance's master and stamped, dropped only with the confirmation of the env its
//! stamp names, and a dumped schema loaded only into an empty stamped database, never
//! touching the dbtools schema.

use harness::Project;

fn dbmigrate(project: &Project, args: &[&str]) -> harness::Run {
    project.tool("dbmigrate").args(args).run()
}

/// `dbmigrate load --env dev --file F` with `sql` as F.
fn load_forged(project: &Project, sql: &str) -> harness::Run {
    let forged = project.path().join("forged.sql");
    std::fs::write(&forged, sql).unwrap();
    project
        .tool("dbmigrate")
        .args(["load", "--env", "dev", "--file"])
        .arg_path(&forged)
        .run()
}

#[test]
fn create_drop_and_load_go_through_the_instance_s_master_and_the_guard() {
    let project = Project::local_dev_test();
    project.apply();
    let migrations = project.path().join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        migrations.join("1_a.sql"),
        "-- migrate:up\ncreate table a (id int primary key);\n-- migrate:down\ndrop table a;\n",
    )
    .unwrap();
    dbmigrate(&project, &["up", "--env", "dev"]).expect(0);
    dbmigrate(&project, &["dump", "--env", "dev"]).expect(0);
    assert!(project.path().join("db/schema.sql").is_file());

    // dev is open: drop needs no confirmation; the database is gone.
    let dropped = dbmigrate(&project, &["drop", "--env", "dev"]);
    dropped.expect(0);
    assert!(
        dropped
            .stderr
            .contains("dropped database combine_dev of env dev"),
        "{}",
        dropped.stderr
    );
    dbmigrate(&project, &["status", "--env", "dev"]).expect_error("dbmigrate", 4, "combine_dev");
    let again = dbmigrate(&project, &["drop", "--env", "dev"]);
    again.expect(0);
    assert!(again.stderr.contains("nothing to drop"), "{}", again.stderr);

    // create: made by the master, owned by the env's role, stamped.
    let created = dbmigrate(&project, &["create", "--env", "dev"]);
    created.expect(0);
    assert!(
        created
            .stderr
            .contains("created database combine_dev, owned by combine_app")
            && created.stderr.contains("stamped combine_dev as dev"),
        "{}",
        created.stderr
    );
    let verdict = project
        .tool("dbguard")
        .args(["check", "--env", "dev", "--action", "write"])
        .run();
    assert_eq!(verdict.expect(0).json()["stamp"]["env"], "dev");

    // load: the dumped schema, versions and all, into the empty database.
    let loaded = dbmigrate(&project, &["load", "--env", "dev"]);
    let result = loaded.expect(0).json();
    assert_eq!(result["action"], "load");
    assert_eq!(result["migrations"][0]["version"], "1");
    let status = dbmigrate(&project, &["status", "--env", "dev"])
        .expect(0)
        .json();
    assert_eq!(status["pending"], 0);
    // Not twice: the database is no longer empty.
    dbmigrate(&project, &["load", "--env", "dev"]).expect_error("dbmigrate", 3, "is not empty");
    // A schema file touching the guard's own schema is refused before anything runs.
    dbmigrate(&project, &["drop", "--env", "dev"]).expect(0);
    dbmigrate(&project, &["create", "--env", "dev"]).expect(0);
    load_forged(
        &project,
        "create table public.b (id int);\ndelete from dbtools.audit;\n",
    )
    .expect_error("dbmigrate", 3, "must not touch the dbtools schema");
    // Nor may it end the transaction it loads in, nor build SQL the lint cannot read.
    load_forged(
        &project,
        "create table public.b (id int);\ncommit;\ncreate table public.c (id int);\n",
    )
    .expect_error("dbmigrate", 2, "a schema file loads as one transaction");
    load_forged(
        &project,
        "do $$ begin execute 'delete from db' || 'tools.seeds'; end $$;\n",
    )
    .expect_error("dbmigrate", 3, "dynamic-sql");
    assert_eq!(
        dbmigrate(&project, &["status", "--env", "dev"])
            .expect(0)
            .json()["pending"],
        1,
        "nothing was loaded"
    );

    // A piped profile pointing elsewhere than dbtools.toml gets no master password.
    let mut aimed: serde_json::Value = serde_json::from_str(&project.profile("dev")).unwrap();
    aimed["conn"]["port"] = (aimed["conn"]["port"].as_u64().unwrap() + 1).into();
    aimed["secret"] = serde_json::json!({"source": "env", "ref": "PGPASSWORD"});
    project
        .tool("dbmigrate")
        .args(["drop"])
        .stdin(aimed.to_string())
        .run()
        .expect_error(
            "dbmigrate",
            3,
            "refusing to send the instance's master password elsewhere",
        );

    // test is confirm: drop needs --confirm test, and the refusal leaves the database there.
    dbmigrate(&project, &["drop", "--env", "test"]).expect_error("dbmigrate", 3, "--confirm test");
    dbmigrate(&project, &["status", "--env", "test"]).expect(0);
    dbmigrate(&project, &["drop", "--env", "test", "--confirm", "test"]).expect(0);
    // A database for a role that does not exist is not created.
    dbmigrate(&project, &["drop", "--env", "dev"]).expect(0);
    let config = std::fs::read_to_string(project.path().join("dbtools.toml")).unwrap();
    std::fs::write(
        project.path().join("dbtools.toml"),
        config.replacen(
            "user = \"combine_app\"",
            "user = \"nobody_app\"\nsecret = \"env:PW\"",
            1,
        ),
    )
    .unwrap();
    project
        .tool("dbmigrate")
        .args(["create", "--env", "dev"])
        .env("PW", "unused")
        .run()
        .expect_error(
            "dbmigrate",
            2,
            "role nobody_app of env dev does not exist on the instance",
        );
    dbmigrate(&project, &["status", "--env", "test"]).expect_error("dbmigrate", 4, "combine_test");
}
