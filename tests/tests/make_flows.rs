//! README's first command, `make up`, run for real: it provisions local DEV and TEST and prints
//! both witnesses over TLS; re-running it changes nothing; `make down` stops the instances.
//! (The tools are already built by `make test`, so the test passes CARGO=true to skip the build:
//! a nested cargo would wait on the lock the running `cargo test` holds.)

use harness::{TempDir, Tool};

fn make(target: &str, state: &TempDir) -> harness::Run {
    make_with(target, &[], state)
}

fn make_with(target: &str, vars: &[&str], state: &TempDir) -> harness::Run {
    let repo = harness::repo_root();
    Tool::program("make")
        .args(["-s", "-C"])
        .arg_path(&repo)
        .args([
            target,
            "CARGO=true".to_string().as_str(),
            &format!("BIN={}", harness::bin_dir().display()),
        ])
        .args(vars)
        .env("DBTOOLS_STATE_DIR", &state.path)
        .env("DBTOOLS_CONFIG", repo.join("dbtools.toml"))
        .run()
}

#[test]
fn make_up_prints_dev_and_test_witnesses_over_tls_and_is_harmless_to_repeat() {
    let state = TempDir::new("makeup");
    let _cleanup = Cleanup(state.path.clone());
    let (run, cmdlines) = harness::sample_cmdlines(
        &["rdsprov", "initdb", "dbmigrate", "dbseed", "dbconnect"],
        || make("up", &state),
    );
    run.expect(0);
    let passwords = harness::secret_passwords(&state.path);
    assert_eq!(passwords.len(), 4);
    for password in &passwords {
        assert!(
            cmdlines.iter().all(|c| !c.contains(password.as_str())),
            "a password was on a command line"
        );
        assert!(
            !run.stderr.contains(password.as_str()),
            "a password was on stderr"
        );
    }
    let witnesses: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a witness per line"))
        .collect();
    let envs: Vec<&str> = witnesses
        .iter()
        .map(|w| w["env"].as_str().unwrap())
        .collect();
    assert_eq!(envs, ["dev", "test"]);
    for witness in &witnesses {
        assert_eq!(witness["kind"], "dbtools.witness/v1");
        assert_eq!(witness["ssl"]["in_use"], true, "{witness}");
    }
    assert!(
        run.stderr
            .contains("dbmigrate: applied 20260101000004_create_auth_sessions.sql"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("dbseed: applied common/010_channels.sql"),
        "{}",
        run.stderr
    );
    let again = make("up", &state);
    assert_eq!(again.expect(0).stdout.lines().count(), 2);
    assert!(
        again.stderr.contains("rdsprov: nothing to change"),
        "{}",
        again.stderr
    );

    assert!(
        again.stderr.contains("dbseed: env dev: nothing to seed"),
        "{}",
        again.stderr
    );

    // make reset: drop + recreate + migrate + seed; free on dev, CONFIRM=test on test, never prod.
    let dev = make_with("reset", &["ENV=dev"], &state);
    assert_eq!(dev.expect(0).json()["env"], "dev");
    assert!(
        dev.stderr.contains("rdsprov: dropped database combine_dev"),
        "{}",
        dev.stderr
    );
    assert!(
        dev.stderr.contains("dbseed: applied dev/020_agents.csv"),
        "{}",
        dev.stderr
    );
    let refused = make_with("reset", &["ENV=test"], &state);
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("rdsprov: reset on env test (confirm) refused"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("dropped database"),
        "{}",
        refused.stderr
    );
    let test = make_with("reset", &["ENV=test", "CONFIRM=test"], &state);
    assert_eq!(test.expect(0).json()["env"], "test");
    let prod = make_with("reset", &["ENV=prod", "CONFIRM=prod"], &state);
    assert_ne!(prod.code, 0);
    assert!(
        prod.stderr
            .contains("rdsprov: reset on env prod (locked) refused: add --break-glass"),
        "{}",
        prod.stderr
    );

    // The audit shows the dev reset, the refused test reset, the confirmed one, refused prod.
    let audit = std::fs::read_to_string(state.path.join("audit.log")).unwrap();
    let resets: Vec<(String, String)> = audit
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|entry| entry["action"] == "reset")
        .map(|entry| {
            (
                entry["env"].as_str().unwrap().to_string(),
                entry["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        resets,
        [
            ("dev".to_string(), "allowed".to_string()),
            ("test".into(), "refused".into()),
            ("test".into(), "allowed".into()),
            ("prod".into(), "refused".into())
        ]
    );
    // No file that holds a password is readable by anyone but its owner.
    let passwords = harness::secret_passwords(&state.path);
    let mut stack = vec![state.path.clone()];
    let mut holding = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            if passwords.iter().any(|p| text.contains(p.as_str())) {
                holding += 1;
                use std::os::unix::fs::PermissionsExt;
                assert_eq!(
                    meta.permissions().mode() & 0o777,
                    0o600,
                    "{} holds a password",
                    path.display()
                );
            }
        }
    }
    assert!(
        holding >= passwords.len(),
        "the secret files themselves were found"
    );

    let down = make("down", &state);
    down.expect(0);
    assert!(
        !down.stderr.contains("error") && !down.stderr.contains("make:"),
        "{}",
        down.stderr
    );
    let status = make("status", &state).json();
    assert!(
        status["instances"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"] == "stopped"),
        "{status}"
    );
}

/// Every flow a newcomer runs, with stdout and stderr kept as CI keeps them (never a terminal):
/// `make up`, `make migrate ENV=test`, `make seed ENV=test` and README's pipelines and commands.
/// No password of the secret store appears in any of them: profiles say where the secret
/// lives, each tool reads it when it connects.
#[test]
fn no_password_in_any_output_of_the_daily_flows() {
    let state = TempDir::new("nosecret");
    let _cleanup = Cleanup(state.path.clone());
    let mut outputs: Vec<(String, harness::Run)> = Vec::new();
    for (target, vars) in [
        ("up", &[][..]),
        ("migrate", &["ENV=test"][..]),
        ("seed", &["ENV=test"][..]),
        ("migrate-status", &["ENV=dev"][..]),
    ] {
        let run = make_with(target, vars, &state);
        run.expect(0);
        outputs.push((format!("make {target} {}", vars.join(" ")), run));
    }
    let repo = harness::repo_root();
    let path = format!(
        "{}:{}",
        harness::bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for line in [
        "dbenv resolve dev | dbconnect check",
        "dbenv resolve test | dbmigrate up | dbseed apply | dbconnect check",
        "dbenv resolve test | dbmigrate status | dbmigrate up",
        "dbenv list",
        "dbenv resolve test",
        "dbconnect check --env test",
        "dbconnect doctor --env test",
        "dbconnect url --env test",
        "dbmigrate status --env dev --exit-code",
        "dbseed status --env dev",
        "dbseed verify --env dev",
        "dbenv export dev --format env",
        "dbenv export dev --format service",
        "dbenv export test --format json",
        "dbguard check --env test --action drop",
        "dbguard audit",
        "rdsprov status",
    ] {
        let run = Tool::program("bash")
            .args(["-o", "pipefail", "-c", line])
            .env("PATH", &path)
            .env("DBTOOLS_STATE_DIR", &state.path)
            .env("DBTOOLS_CONFIG", repo.join("dbtools.toml"))
            .current_dir(&repo)
            .run();
        assert!(
            !run.stdout.is_empty() || !run.stderr.is_empty(),
            "{line} printed nothing"
        );
        outputs.push((line.to_string(), run));
    }
    let passwords = harness::secret_passwords(&state.path);
    assert_eq!(
        passwords.len(),
        4,
        "the masters and app roles of dev and test"
    );
    for (what, run) in &outputs {
        for password in &passwords {
            assert!(
                !run.stdout.contains(password.as_str()) && !run.stderr.contains(password.as_str()),
                "a password in the output of {what}:\n{}\n{}",
                run.stdout,
                run.stderr
            );
        }
    }
    // The flows did reach the databases: the profiles' secrets were read where they connect.
    let checked = &outputs
        .iter()
        .find(|(what, _)| what == "dbenv resolve dev | dbconnect check")
        .unwrap()
        .1;
    assert_eq!(checked.expect(0).json()["kind"], "dbtools.witness/v1");
}

#[test]
fn make_help_lists_the_flows() {
    let state = TempDir::new("makehelp");
    let run = make("help", &state);
    for target in ["make up", "make test", "make down", "make psql"] {
        assert!(run.expect(0).stdout.contains(target), "{}", run.stdout);
    }
}

struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        harness::stop_local_instances(&self.0);
    }
}

/// `make migrate ENV=test` on an AWS env: pending migrations → a manual RDS snapshot first
/// (moto), its id in dbmigrate's result and in the audit log; nothing pending → no snapshot;
/// dev (off by default) → no snapshot. The database is a real PostgreSQL on loopback (moto has
/// none behind its endpoints); the profile names the AWS instance.
#[test]
fn make_migrate_snapshots_an_aws_env_before_pending_migrations() {
    let moto = harness::MotoServer::start();
    let pg = harness::PgCluster::start(harness::Tls::Required);
    let state = TempDir::new("make-snapshot");
    let project = TempDir::new("make-snapshot-project");
    std::fs::write(
        project.path.join("rds.toml"),
        "[env.test]\nid = \"combine-test\"\nclass = \"db.t4g.small\"\ningress = [\"10.0.1.0/24\"]\n",
    )
    .unwrap();
    Tool::new("rdsprov")
        .args(["apply"])
        .arg_path_flag("--spec", &project.path.join("rds.toml"))
        .aws(&moto)
        .env("RDSPROV_POLL_SECONDS", "0.2")
        .run()
        .expect(0);
    for (env, db) in [("test", "app_test"), ("dev", "app_dev")] {
        pg.psql("postgres", &format!("CREATE DATABASE {db}"));
        pg.stamp(db, env);
    }
    let ca = pg.ca_cert.as_ref().unwrap().display().to_string();
    // Each env its own role: test (confirm) and dev (open) share the instance.
    let env_table = |env: &str, db: &str| {
        format!(
            "[env.{env}]\ninstance = \"combine-test\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"{db}\"\nuser = \"{}\"\nsecret = \"env:PW\"\nsslmode = \"verify-full\"\nsslrootcert = \"{ca}\"\n",
            pg.port,
            pg.login_role(&format!("{env}_admin"))
        )
    };
    let config = project.path.join("dbtools.toml");
    std::fs::write(
        &config,
        format!(
            "[instance.combine-test]\nprovider = \"aws\"\nregion = \"eu-west-1\"\nmaster_user = \"admin\"\n{}{}",
            env_table("test", "app_test"),
            env_table("dev", "app_dev")
        ),
    )
    .unwrap();
    let migrations = project.path.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        migrations.join("20260101000000_people.sql"),
        "-- migrate:up\nCREATE TABLE people (id int);\n-- migrate:down\nDROP TABLE people;\n",
    )
    .unwrap();
    let migrate = |env: &str| {
        Tool::program("make")
            .args(["-s", "-C"])
            .arg_path(&harness::repo_root())
            .args([
                "migrate",
                &format!("ENV={env}"),
                "CARGO=true",
                &format!("BIN={}", harness::bin_dir().display()),
            ])
            .aws(&moto)
            .env("DBTOOLS_STATE_DIR", &state.path)
            .env("DBTOOLS_CONFIG", &config)
            .env("PW", harness::SUPERUSER_PASSWORD)
            .env("RDSPROV_POLL_SECONDS", "0.2")
            .run()
    };
    let snapshots = || {
        moto.call(
            "rds",
            "describe_db_snapshots",
            serde_json::json!({"DBInstanceIdentifier": "combine-test", "SnapshotType": "manual"}),
        )["DBSnapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["DBSnapshotIdentifier"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };

    let run = migrate("test");
    let result = run.expect(0).json();
    assert_eq!(result["kind"], "dbtools.migrate.result/v1");
    let taken = result["snapshot"].as_str().unwrap().to_string();
    assert!(taken.starts_with("combine-test-"), "{result}");
    assert_eq!(snapshots(), std::slice::from_ref(&taken));
    assert!(
        run.stderr
            .contains("env test: 1 pending migration(s): taking a snapshot of combine-test first"),
        "{}",
        run.stderr
    );
    let audit = std::fs::read_to_string(state.path.join("audit.log")).unwrap();
    assert!(
        audit.contains(&format!("after snapshot {taken}")),
        "{audit}"
    );

    let again = migrate("test");
    assert!(again.expect(0).json()["snapshot"].is_null());
    assert!(
        again
            .stderr
            .contains("env test: no pending migrations: no snapshot"),
        "{}",
        again.stderr
    );
    let dev = migrate("dev");
    assert_eq!(
        dev.expect(0).json()["migrations"].as_array().unwrap().len(),
        1
    );
    assert!(
        dev.stderr
            .contains("env dev: snapshot_before_migrate is off: no snapshot"),
        "{}",
        dev.stderr
    );
    assert_eq!(snapshots().len(), 1, "one snapshot in all");

    // By hand, from dbtools.toml alone (no spec), and a pipeline fed the wrong object.
    let by_hand = Tool::new("rdsprov")
        .args(["snapshot", "--env", "test", "--name", "before-release"])
        .aws(&moto)
        .env("DBTOOLS_CONFIG", &config)
        .env("RDSPROV_POLL_SECONDS", "0.2")
        .run();
    assert_eq!(by_hand.expect(0).json()["snapshot"], "before-release");
    assert_eq!(snapshots().len(), 2);
    let profile = Tool::new("dbenv")
        .args(["resolve", "test"])
        .env("DBTOOLS_CONFIG", &config)
        .env("PW", harness::SUPERUSER_PASSWORD)
        .run();
    Tool::new("rdsprov")
        .args(["snapshot", "--before-migrate"])
        .stdin(profile.expect(0).stdout.clone())
        .aws(&moto)
        .env("DBTOOLS_CONFIG", &config)
        .run()
        .expect_error(
            "rdsprov",
            2,
            "--before-migrate reads what `dbmigrate status` prints, not dbtools.profile/v2",
        );
    assert_eq!(snapshots().len(), 2);
}

/// `make install PREFIX=…`: the six binaries, their completions for bash (which then completes
/// subcommands), zsh, fish and PowerShell (parsed with the PowerShell grammar), and man pages
/// rendered from the same clap definitions; `--version` on every tool.
#[test]
fn make_install_puts_binaries_completions_and_man_pages_in_the_prefix() {
    let state = TempDir::new("make-install-state");
    let prefix = TempDir::new("make-install");
    let prefix_var = format!("PREFIX={}", prefix.path.display());
    let run = make_with("install", &[&prefix_var], &state);
    assert!(run
        .expect(0)
        .stdout
        .contains("installed dbenv dbconnect dbmigrate dbseed dbguard rdsprov"));
    let share = prefix.path.join("share");
    for tool in [
        "dbenv",
        "dbconnect",
        "dbmigrate",
        "dbseed",
        "dbguard",
        "rdsprov",
    ] {
        let binary = prefix.path.join("bin").join(tool);
        let version = Tool::program(&binary).args(["--version"]).run();
        assert_eq!(version.expect(0).stdout.trim(), format!("{tool} 0.1.0"));
        let man =
            std::fs::read_to_string(share.join("man/man1").join(format!("{tool}.1"))).unwrap();
        assert!(
            man.contains(&format!(".TH {tool} 1")) && man.contains(".SH SUBCOMMANDS"),
            "{tool}.1"
        );
        // The pages SEE ALSO names exist, each with the sections clap does not write.
        for page in std::fs::read_dir(share.join("man/man1")).unwrap() {
            let page = std::fs::read_to_string(page.unwrap().path()).unwrap();
            assert!(
                page.contains(".SH \"EXIT STATUS\"") && page.contains(".SH ENVIRONMENT"),
                "{}",
                &page[..200.min(page.len())]
            );
        }
        let zsh =
            std::fs::read_to_string(share.join("zsh/site-functions").join(format!("_{tool}")))
                .unwrap();
        assert!(zsh.starts_with(&format!("#compdef {tool}")), "_{tool}");
        let fish = std::fs::read_to_string(
            share
                .join("fish/vendor_completions.d")
                .join(format!("{tool}.fish")),
        )
        .unwrap();
        assert!(fish.contains(&format!("complete -c {tool}")), "{tool}.fish");
        // bash really completes the subcommands.
        let bash = share.join("bash-completion/completions").join(tool);
        let completed = Tool::program("bash")
            .args([
                "-c",
                &format!(
                    "source '{}'; COMP_WORDS=({tool} ''); COMP_CWORD=1; _{tool} {tool} '' {tool}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                    bash.display()
                ),
            ])
            .run();
        assert!(
            completed.expect(0).stdout.lines().any(|w| w == "help"),
            "{tool}: {}",
            completed.stdout
        );
    }
    let dbenv = Tool::program("bash")
        .args([
            "-c",
            &format!(
                "source '{}'; COMP_WORDS=(dbenv re); COMP_CWORD=1; _dbenv dbenv re dbenv; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                share.join("bash-completion/completions/dbenv").display()
            ),
        ])
        .run();
    assert_eq!(dbenv.expect(0).stdout.trim(), "resolve");
    // --env <TAB> (and dbenv resolve <TAB>) offers the envs of the dbtools.toml in reach.
    let project = harness::Project::local_dev_test();
    let path = format!(
        "{}:{}",
        prefix.path.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (tool, words, cword) in [
        ("dbconnect", "dbconnect check --env ''", 3),
        ("dbenv", "dbenv resolve ''", 2),
    ] {
        let offered = Tool::program("bash")
            .current_dir(project.path())
            .env("PATH", &path)
            .args([
                "-c",
                &format!(
                    "source '{}'; COMP_WORDS=({words}); COMP_CWORD={cword}; _{tool}_with_envs; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                    share.join("bash-completion/completions").join(tool).display()
                ),
            ])
            .run();
        assert_eq!(
            offered.expect(0).stdout,
            "dev\ntest\n",
            "{tool}: {}",
            offered.stderr
        );
    }
    // clap's PowerShell script parses but for one construct tree-sitter-powershell does not know:
    // the `.Where{ … }` method call without parentheses (valid since PowerShell 4). Anything
    // else that fails to parse fails the test.
    let parsed = Tool::program("python3")
        .args([
            "-c",
            "import sys, pathlib, tree_sitter_powershell as g\nfrom tree_sitter import Language, Parser\np = Parser(Language(g.language()))\nfiles = sorted(pathlib.Path(sys.argv[1]).glob('*.ps1'))\nbad = []\nfor f in files:\n    stack = [p.parse(f.read_bytes()).root_node]\n    while stack:\n        n = stack.pop()\n        if (n.type == 'ERROR' or n.is_missing) and n.text != b'Where':\n            bad.append((f.name, n.start_point[0] + 1, n.text[:40]))\n        stack.extend(n.children)\nprint(len(files), bad)",
        ])
        .arg_path(&share.join("powershell/Completions"))
        .run();
    assert_eq!(parsed.expect(0).stdout.trim(), "6 []");
}
