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
    let (run, cmdlines) = harness::sample_cmdlines(|| make("up", &state));
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

    let down = make("down", &state);
    down.expect(0);
    assert!(
        down.stderr.is_empty() || !down.stderr.contains("error"),
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
