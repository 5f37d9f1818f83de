//! `rdsprov` with the local provider, end to end: apply creates real TLS instances, a second
//! apply changes nothing, the profile pipeline and libpq exports work, no password reaches argv,
//! stderr or a file that is not 0600, roles are least-privilege, and destroy is guarded.

use harness::{sample_cmdlines, Project, Tool};
use std::os::unix::fs::PermissionsExt;

fn secret_passwords(project: &Project) -> Vec<String> {
    harness::secret_passwords(&project.state())
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                files.push(entry.path());
            }
        }
    }
    files
}

#[test]
fn apply_provisions_tls_instances_idempotently_without_leaking_passwords() {
    let project = Project::local_dev_test();
    let (run, cmdlines) = sample_cmdlines(&["rdsprov", "initdb", "pg_ctl"], || {
        project.tool("rdsprov").args(["apply"]).run()
    });
    let resources = run.expect(0).json();
    assert_eq!(resources["kind"], "dbtools.resources/v1");
    let instances = resources["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2);
    assert_eq!(instances[0]["status"], "running");
    assert!(
        run.stderr.contains("created instance combine-dev"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("created database combine_test (env test, owner combine_app)"),
        "{}",
        run.stderr
    );

    let passwords = secret_passwords(&project);
    assert_eq!(
        passwords.len(),
        4,
        "a master and an app secret per instance"
    );
    for password in &passwords {
        assert!(!run.stderr.contains(password.as_str()) && !run.stdout.contains(password.as_str()));
        for cmdline in &cmdlines {
            assert!(
                !cmdline.contains(password.as_str()),
                "password on argv: {cmdline}"
            );
        }
        for file in files_under(&project.state()) {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            if String::from_utf8_lossy(&bytes).contains(password.as_str()) {
                let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
                assert_eq!(
                    mode,
                    0o600,
                    "{} holds a password with mode {mode:o}",
                    file.display()
                );
            }
        }
    }
    assert!(
        cmdlines.iter().any(|c| c.contains("initdb")),
        "the sampler saw the run"
    );

    let again = project.tool("rdsprov").args(["apply"]).run();
    assert_eq!(
        again.expect(0).json()["changes"].as_array().unwrap().len(),
        0
    );
    assert_eq!(again.stderr.trim(), "rdsprov: nothing to change");
}

#[test]
fn pipeline_export_and_least_privilege() {
    let project = Project::local_dev_test();
    project.apply();

    // dbenv resolve dev | dbconnect check
    let witness = project
        .tool("dbconnect")
        .args(["check"])
        .stdin(project.profile("dev"))
        .run()
        .expect(0)
        .json();
    assert_eq!(witness["ssl"]["in_use"], true);
    assert_eq!(witness["profile"]["conn"]["sslmode"], "verify-full");
    assert_eq!(witness["user"], "combine_app");
    assert_eq!(witness["database"], "combine_dev");

    // eval "$(dbenv export test --format env)"; psql -c 'select 1'
    let script = format!(
        "set -e; eval \"$({} export test --format env)\"; psql -XAtc 'select current_database(), 1'",
        harness::bin("dbenv").display()
    );
    let run = Tool::program("bash")
        .args(["-c", &script])
        .current_dir(project.path())
        .run();
    assert_eq!(run.expect(0).stdout.trim(), "combine_test|1");

    // Resolving a local profile never opens a network socket (strace sees every socket call).
    let trace = project.path().join("dbenv.strace");
    let run = Tool::program("strace")
        .args(["-f", "-e", "trace=socket,connect", "-o"])
        .arg_path(&trace)
        .arg_path(&harness::bin("dbenv"))
        .args(["resolve", "dev"])
        .current_dir(project.path())
        .run();
    assert_eq!(
        run.code, 0,
        "strace is needed for this test (apt-get install -y strace): {}",
        run.stderr
    );
    let calls = std::fs::read_to_string(&trace).unwrap();
    assert!(
        !calls.contains("AF_INET"),
        "dbenv resolve opened a network socket:\n{calls}"
    );

    // The app role is not a superuser and cannot reach the other env's database.
    let run = Tool::new("dbconnect")
        .args(["psql", "--env", "dev", "--", "-XAtc", "select rolsuper, rolcreatedb, rolcreaterole from pg_roles where rolname = current_user"])
        .current_dir(project.path())
        .run();
    assert_eq!(run.expect(0).stdout.trim(), "f|f|f");

    // Plain TCP is refused by the server itself (hostssl only).
    // (An edited profile whose secret is the env's own is refused here first: that secret goes
    // only over the env's own TLS. With the password in PGPASSWORD, the server decides.)
    let mut profile: serde_json::Value = serde_json::from_str(&project.profile("dev")).unwrap();
    profile["conn"]["sslmode"] = "disable".into();
    project
        .tool("dbconnect")
        .args(["check"])
        .stdin(profile.to_string())
        .run()
        .expect_error("dbconnect", 2, "but dbtools.toml resolves it to");
    let app: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project.state().join("secrets/combine-dev/combine_app.json"))
            .unwrap(),
    )
    .unwrap();
    profile["secret"] = serde_json::json!({"source": "env", "ref": "PGPASSWORD"});
    let run = project
        .tool("dbconnect")
        .args(["check"])
        .env("PGPASSWORD", app["password"].as_str().unwrap())
        .stdin(profile.to_string())
        .run();
    run.expect_error("dbconnect", 4, "no pg_hba.conf entry");
}

#[test]
fn stop_start_status_and_guarded_destroy() {
    let project = Project::local_dev_test();
    project.apply();
    let stopped = project
        .tool("rdsprov")
        .args(["stop", "--env", "dev"])
        .run()
        .expect(0)
        .json();
    assert_eq!(stopped["instances"][0]["status"], "stopped");
    project
        .tool("dbconnect")
        .args(["check"])
        .stdin(project.profile("dev"))
        .run()
        .expect_error("dbconnect", 4, "connection refused");
    let status = project
        .tool("rdsprov")
        .args(["status"])
        .run()
        .expect(0)
        .json();
    let states: Vec<&str> = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["stopped", "running"]);
    project
        .tool("rdsprov")
        .args(["start", "--env", "dev"])
        .run()
        .expect(0);
    project
        .tool("dbconnect")
        .args(["check"])
        .stdin(project.profile("dev"))
        .run()
        .expect(0);

    // test is confirm-level: no confirm, or a wrong-case one, is refused and deletes nothing.
    project
        .tool("rdsprov")
        .args(["destroy", "--env", "test"])
        .run()
        .expect_error("rdsprov", 3, "add --confirm test");
    project
        .tool("rdsprov")
        .args(["destroy", "--env", "test", "--confirm", "TEST"])
        .run()
        .expect_error("rdsprov", 3, "not confirmed: test");
    assert!(project
        .state()
        .join("local/combine-test/instance.json")
        .exists());
    let destroyed = project
        .tool("rdsprov")
        .args(["destroy", "--env", "test", "--confirm", "test"])
        .run()
        .expect(0)
        .json();
    assert_eq!(
        destroyed["changes"][0],
        "destroyed instance combine-test (data and secrets deleted)"
    );
    assert!(!project.state().join("local/combine-test").exists());
    assert!(!project.state().join("secrets/combine-test").exists());
    project
        .tool("dbenv")
        .args(["resolve", "test"])
        .run()
        .expect_error("dbenv", 4, "local instance combine-test is not provisioned");

    // dev is open: destroy needs no confirm.
    project
        .tool("rdsprov")
        .args(["destroy", "--env", "dev"])
        .run()
        .expect(0);
}

#[test]
fn a_failed_create_leaves_nothing_behind() {
    let project = Project::local_dev_test();
    // A bogus server directory makes initdb fail after the staging dir was made.
    let fake = harness::TempDir::new("fakepg");
    for tool in ["initdb", "pg_ctl", "postgres"] {
        let path = fake.path.join(tool);
        std::fs::write(&path, "#!/bin/sh\necho 'postgres (PostgreSQL) 15.0'\n[ \"$1\" = --version ] && exit 0\necho 'initdb: boom' >&2\nexit 1\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = project
        .tool("rdsprov")
        .args(["apply", "--env", "dev"])
        .env("DBTOOLS_PG_BIN", &fake.path)
        .run();
    run.expect_error("rdsprov", 5, "initdb failed");
    let local = project.state().join("local");
    let leftovers: Vec<String> = std::fs::read_dir(&local)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n != "ca" && n != ".lock")
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    assert!(!project
        .state()
        .join("secrets/combine-dev/master.json")
        .exists());
}

#[test]
fn missing_server_binaries_say_what_to_install() {
    let project = Project::local_dev_test();
    let empty = harness::TempDir::new("nopg");
    let run = project
        .tool("rdsprov")
        .args(["apply"])
        .env("DBTOOLS_PG_BIN", &empty.path)
        .run();
    run.expect_error("rdsprov", 2, "apt-get install -y postgresql");
}

#[test]
fn hostile_names_create_nothing() {
    let project = Project::new(
        "[env.dev]\ninstance = \"x\"\ndatabase = \"app\\\"; DROP DATABASE postgres; --\"\nuser = \"app\"\n[instance.x]\nprovider = \"local\"\n",
    );
    project.tool("rdsprov").args(["apply"]).run().expect_error(
        "rdsprov",
        2,
        "database \"app\\\"; DROP DATABASE postgres; --\" is not allowed",
    );
    assert!(
        !project.state().exists(),
        "nothing may be created for a rejected config"
    );
}

#[test]
fn apply_killed_mid_run_converges_on_rerun() {
    let project = Project::local_dev_test();
    for delay_ms in [150, 600, 1200] {
        let mut child = std::process::Command::new(harness::bin("rdsprov"))
            .arg("apply")
            .current_dir(project.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        harness::kill_9(&mut child, "rdsprov apply"); // no cleanup of ours runs
    }
    project.apply();
    for env in ["dev", "test"] {
        let witness = project
            .tool("dbconnect")
            .args(["check"])
            .stdin(project.profile(env))
            .run()
            .expect(0)
            .json();
        assert_eq!(witness["ssl"]["in_use"], true);
    }
    let again = project.tool("rdsprov").args(["apply"]).run();
    assert_eq!(again.expect(0).stderr.trim(), "rdsprov: nothing to change");
}

/// `tenant add`: a database and an owning role per application on an env's instance; a
/// tenant cannot connect to another's database; the password is a 0600 secret; the database
/// is stamped with the env; a rerun changes nothing; bad names are refused before any SQL.
#[test]
fn tenants_get_their_own_database_and_cannot_see_each_other() {
    let project = Project::local_dev_test();
    project.apply();
    let added = project
        .tool("rdsprov")
        .args(["tenant", "add", "billing", "--env", "dev"])
        .run();
    let resources = added.expect(0).json();
    for line in [
        "created role billing (login only)",
        "created database billing (env dev, owner billing)",
        "restricted CONNECT on billing to its owner",
        "stamped database billing as env dev",
    ] {
        assert!(added.stderr.contains(line), "{line}: {}", added.stderr);
    }
    let databases = resources["instances"][0]["databases"].as_array().unwrap();
    let billing = databases.iter().find(|d| d["name"] == "billing").unwrap();
    assert_eq!(billing["owner"], "billing");
    assert_eq!(billing["env"], "dev");
    assert_eq!(billing["secret"]["source"], "local");
    assert_eq!(billing["secret"]["ref"], "combine-dev/billing");
    project
        .tool("rdsprov")
        .args(["tenant", "add", "shop", "--env", "dev"])
        .run()
        .expect(0);

    let again = project
        .tool("rdsprov")
        .args(["tenant", "add", "billing", "--env", "dev"])
        .run();
    assert_eq!(again.expect(0).json()["changes"], serde_json::json!([]));
    assert!(
        again.stderr.contains("nothing to change"),
        "{}",
        again.stderr
    );
    // An apply keeps the tenants in the instance record.
    project.apply();
    let status = project
        .tool("rdsprov")
        .args(["status"])
        .run()
        .expect(0)
        .json();
    let names: Vec<&str> = status["instances"][0]["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["combine_dev", "billing", "shop"]);
    // The registry lists them, from the instance records.
    let registry = project.tool("rdsprov").args(["registry"]).run();
    let text = registry.expect(0).stdout.clone();
    for row in [
        "(local) from the real state at ",
        "| combine-dev | billing | billing | dev | local:combine-dev/billing |",
        "| combine-dev | shop | shop | dev | local:combine-dev/shop |",
        "| combine-test | combine_test | combine_app | test | local:combine-test/combine_app |",
    ] {
        assert!(text.contains(row), "missing {row:?} in\n{text}");
    }

    // The secret file is 0600 and holds the role's password.
    let secret_file = project.state().join("secrets/combine-dev/shop.json");
    assert_eq!(
        std::fs::metadata(&secret_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let secret: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&secret_file).unwrap()).unwrap();
    let mut profile: serde_json::Value = serde_json::from_str(&project.profile("dev")).unwrap();
    profile["conn"]["user"] = "shop".into();
    profile["conn"]["dbname"] = "shop".into();
    // The tenant's password, where libpq would read it.
    profile["secret"] = serde_json::json!({"source": "env", "ref": "PGPASSWORD"});
    let shop_password = secret["password"].as_str().unwrap().to_string();
    let witness = Tool::new("dbconnect")
        .args(["check"])
        .env("PGPASSWORD", &shop_password)
        .stdin(profile.to_string())
        .run()
        .expect(0)
        .json();
    assert_eq!(witness["database"], "shop");
    // shop cannot even connect to billing's database (nor to the env's own).
    for other in ["billing", "combine_dev"] {
        profile["conn"]["dbname"] = other.into();
        Tool::new("dbconnect")
            .args(["check"])
            .env("PGPASSWORD", &shop_password)
            .stdin(profile.to_string())
            .run()
            .expect_error("dbconnect", 4, "permission denied for database");
    }
    // The stamp says dev.
    profile["conn"]["dbname"] = "shop".into();
    let verdict = Tool::new("dbguard")
        .args(["check", "--action", "write"])
        .env("PGPASSWORD", &shop_password)
        .stdin(profile.to_string())
        .run();
    verdict.expect(0);

    for (name, message) in [
        ("Billing", "tenant name"),
        ("postgres", "is taken by PostgreSQL, RDS or the master user"),
        (
            "combine_dev",
            "is env dev's database on instance combine-dev",
        ),
        (
            // Also dev's own role, but test's too: the tenant would reach test's database.
            "combine_app",
            "is env test's app role: a tenant gets its own role",
        ),
        ("x; drop", "tenant name"),
    ] {
        project
            .tool("rdsprov")
            .args(["tenant", "add", name, "--env", "dev"])
            .run()
            .expect_error("rdsprov", 2, message);
    }
    project
        .tool("rdsprov")
        .args(["tenant", "add", "x", "--env", "dev", "--iam"])
        .run()
        .expect_error("rdsprov", 2, "--spec");
}

/// README: "the plain password never reaches the server's files or logs". The server logs every
/// statement (log_statement = all, set by the test as the master) while passwords are set both
/// ways the provider sets them — a tenant's role made (CREATE ROLE … PASSWORD) and, its secret
/// gone, the app role's password set again (ALTER ROLE … PASSWORD) — then every byte under the
/// instances' directories (data dirs, WAL, server logs) is searched for every plain password the
/// tools keep. The log is checked to hold both statements, so the search looked where a
/// password would have been. (initdb gets a SCRAM verifier file: see apply_provisions_….)
#[test]
fn plain_passwords_never_reach_the_server_s_files_or_logs() {
    let project = Project::local_dev_test();
    let applied = project.apply();
    let dev = applied["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "combine-dev")
        .unwrap()
        .clone();
    let port = dev["endpoint"]["port"].as_u64().unwrap();
    let master: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project.state().join("secrets/combine-dev/master.json")).unwrap(),
    )
    .unwrap();
    let as_master = |sql: &str| {
        Tool::program("psql")
            .args(["-XAtq", "-c", sql])
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", port.to_string())
            .env("PGUSER", master["username"].as_str().unwrap())
            .env("PGPASSWORD", master["password"].as_str().unwrap())
            .env("PGDATABASE", "postgres")
            .env("PGSSLMODE", "require")
            .run()
            .expect(0);
    };
    as_master("alter system set log_statement = 'all'");
    as_master("select pg_reload_conf()");
    project
        .tool("rdsprov")
        .args(["tenant", "add", "--env", "dev", "billing"])
        .run()
        .expect(0);
    std::fs::remove_file(project.state().join("secrets/combine-dev/combine_app.json")).unwrap();
    let again = project.tool("rdsprov").args(["apply"]).run();
    assert!(
        again
            .expect(0)
            .stderr
            .contains("reset the password of role combine_app"),
        "{}",
        again.stderr
    );
    project.tool("rdsprov").args(["stop"]).run().expect(0);

    let passwords = secret_passwords(&project);
    assert!(
        passwords.len() >= 4,
        "master, app roles and the tenant: {passwords:?}"
    );
    let instances = project.state().join("local");
    let log = std::fs::read_to_string(instances.join("combine-dev/server.log")).unwrap();
    let logged = log.to_lowercase();
    assert!(
        logged.contains("statement: ")
            && logged.contains("create role")
            && logged.contains("alter role"),
        "the server logged the statements that set passwords"
    );
    let files = files_under(&instances);
    assert!(files.len() > 100, "the data directories were searched");
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for password in &passwords {
            assert!(
                !bytes
                    .windows(password.len())
                    .any(|window| window == password.as_bytes()),
                "{} holds a plain password",
                file.display()
            );
        }
    }
}
