//! dbenv against configs and secrets: env selection, unknown envs, missing secrets, hostile
//! names, exports, ad-hoc profiles from DATABASE_URL, and an unwritable state dir.

use harness::{Project, Tool};

const REMOTE: &str = r#"app = "combine"
[env.dev]
host = "db.dev.example.com"
database = "combine_dev"
user = "combine_app"
secret = "env:DEV_DB_PASSWORD"
sslrootcert = "certs/rds.pem"
[env.prod]
host = "db.example.com"
database = "combine"
user = "combine_app"
secret = "local:prod/app"
"#;

#[test]
fn resolve_reads_an_env_var_secret_and_defaults_to_verify_full() {
    let project = Project::new(REMOTE);
    let run = project
        .tool("dbenv")
        .args(["resolve", "dev"])
        .env("DEV_DB_PASSWORD", "pw from env")
        .run();
    let profile = run.expect(0).json();
    assert_eq!(profile["kind"], "dbtools.profile/v2");
    // Where the password lives, never the password.
    assert!(!run.stdout.contains("pw from env"), "{}", run.stdout);
    assert_eq!(profile["conn"].get("password"), None);
    assert_eq!(profile["secret"]["source"], "env");
    assert_eq!(profile["secret"]["ref"], "DEV_DB_PASSWORD");
    assert_eq!(profile["conn"]["sslmode"], "verify-full");
    assert_eq!(profile["protection"], "open");
    let root = profile["conn"]["sslrootcert"].as_str().unwrap();
    assert!(
        root.ends_with("certs/rds.pem") && root.starts_with('/'),
        "{root}"
    );
}

#[test]
fn env_selection_uses_dbtools_env_then_dev() {
    let project = Project::new(REMOTE);
    let run = project
        .tool("dbenv")
        .args(["resolve"])
        .env("DEV_DB_PASSWORD", "x")
        .run();
    assert_eq!(run.expect(0).json()["env"], "dev");
    let run = project
        .tool("dbenv")
        .args(["resolve"])
        .env("DBTOOLS_ENV", "staging")
        .run();
    run.expect_error("dbenv", 2, "unknown env \"staging\"");
    assert!(run.stderr.contains("knows dev, prod"), "{}", run.stderr);
}

#[test]
fn missing_secrets_are_named_without_leaking_anything() {
    let project = Project::new(REMOTE);
    project
        .tool("dbenv")
        .args(["resolve", "dev"])
        .run()
        .expect_error(
            "dbenv",
            2,
            "environment variable DEV_DB_PASSWORD is not set",
        );
    project
        .tool("dbenv")
        .args(["resolve", "prod"])
        .run()
        .expect_error("dbenv", 2, "secret local:prod/app is missing");
}

#[test]
fn hostile_names_in_config_are_rejected() {
    for (bad, needle) in [
        (
            "database = \"combine_dev\"",
            "database = \"x\\\"; DROP TABLE users; --\"",
        ),
        (
            "user = \"combine_app\"\nsecret = \"env:DEV_DB_PASSWORD\"",
            "user = \"app user\"\nsecret = \"env:DEV_DB_PASSWORD\"",
        ),
        ("[env.dev]", "[env.\"dev'; select\"]"),
    ] {
        let project = Project::new(&REMOTE.replacen(bad, needle, 1));
        let run = project.tool("dbenv").args(["list"]).run();
        run.expect_error("dbenv", 2, "is not allowed");
    }
}

#[test]
fn no_config_says_where_it_looked() {
    let dir = harness::TempDir::new("noconfig");
    Tool::new("dbenv")
        .args(["list"])
        .current_dir(&dir.path)
        .run()
        .expect_error("dbenv", 2, "no dbtools.toml in");
}

#[test]
fn malformed_config_names_the_file_and_the_key() {
    let project = Project::new("[env.dev]\nhost = 5\n");
    project.tool("dbenv").args(["list"]).run().expect_error(
        "dbenv",
        2,
        "dbtools.toml: line 2, key host: invalid type",
    );
}

/// DEV and TEST on one instance as one app role: a DEV migration could drop TEST's database,
/// whatever the guard says, so the config itself is refused (naming both envs, the role, the
/// instance and the lines); envs of one protection may share a role.
#[test]
fn envs_of_different_protection_sharing_a_role_on_one_instance_are_refused() {
    let config = "app = \"combine\"\n\
        [instance.shared]\nprovider = \"local\"\n\
        [env.dev]\ninstance = \"shared\"\ndatabase = \"combine_dev\"\nuser = \"combine_app\"\n\
        [env.test]\ninstance = \"shared\"\ndatabase = \"combine_test\"\nuser = \"combine_app\"\n";
    let project = Project::new(config);
    project.tool("dbenv").args(["list"]).run().expect_error(
        "dbenv",
        2,
        "envs dev (open) and test (confirm) share role \"combine_app\" on instance shared (lines 7 and 11)",
    );
    // Both confirm (dev raised; test cannot be lowered below its name's level): allowed.
    let same =
        Project::new(&config.replace("[env.dev]\n", "[env.dev]\nprotection = \"confirm\"\n"));
    same.tool("dbenv").args(["list"]).run().expect(0);
}

#[test]
fn list_shows_envs_with_protection() {
    let project = Project::new(REMOTE);
    let listing = project.tool("dbenv").args(["list"]).run().expect(0).json();
    assert_eq!(listing["envs"][0]["env"], "dev");
    assert_eq!(listing["envs"][1]["protection"], "locked");
    assert_eq!(listing["default_env"], "dev");
}

#[test]
fn export_env_writes_a_0600_pgpass_and_keeps_the_password_out_of_the_output() {
    use std::os::unix::fs::PermissionsExt;
    let project = Project::new(REMOTE);
    let run = project
        .tool("dbenv")
        .args(["export", "dev", "--format", "env"])
        .env("DEV_DB_PASSWORD", "s3cr:t")
        .run();
    run.expect(0);
    assert!(!run.stdout.contains("s3cr"), "{}", run.stdout);
    assert!(
        run.stdout.contains("export PGHOST='db.dev.example.com'"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("export PGSSLMODE='verify-full'"),
        "{}",
        run.stdout
    );
    let passfile = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("export PGPASSFILE="))
        .unwrap()
        .trim_matches('\'');
    let meta = std::fs::metadata(passfile).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(passfile).unwrap(),
        "db.dev.example.com:5432:combine_dev:combine_app:s3cr\\:t\n"
    );
}

#[test]
fn export_url_service_and_pgpass() {
    let project = Project::new(REMOTE);
    let url = project
        .tool("dbenv")
        .args(["export", "dev", "-f", "url"])
        .env("DEV_DB_PASSWORD", "p@ss")
        .run();
    assert!(url.expect(0).stdout.starts_with("postgres://combine_app:p%40ss@db.dev.example.com:5432/combine_dev?sslmode=verify-full&sslrootcert="), "{}", url.stdout);
    let service = project
        .tool("dbenv")
        .args(["export", "dev", "-f", "service"])
        .env("DEV_DB_PASSWORD", "p")
        .run();
    let text = &service.expect(0).stdout;
    assert!(
        text.starts_with("[dev]\nhost=db.dev.example.com\nport=5432\ndbname=combine_dev\n"),
        "{text}"
    );
    assert!(
        text.contains("passfile=") && !text.contains("password"),
        "{text}"
    );
    // pgpass: the password asked for by name, escaped as libpq reads it; on a terminal only
    // with --reveal.
    let pgpass = project
        .tool("dbenv")
        .args(["export", "dev", "-f", "pgpass"])
        .env("DEV_DB_PASSWORD", "p:w")
        .run();
    assert_eq!(
        pgpass.expect(0).stdout,
        "db.dev.example.com:5432:combine_dev:combine_app:p\\:w\n"
    );
    let hidden = project
        .tool("dbenv")
        .args(["export", "dev", "-f", "pgpass"])
        .env("DEV_DB_PASSWORD", "p:w")
        .run_on_terminal();
    assert_eq!(hidden.code, 0, "{}", hidden.stdout);
    assert!(!hidden.stdout.contains("p\\:w"), "{}", hidden.stdout);
    let shown = project
        .tool("dbenv")
        .args(["export", "dev", "-f", "pgpass", "--reveal"])
        .env("DEV_DB_PASSWORD", "p:w")
        .run_on_terminal();
    assert!(shown.stdout.contains(":p\\:w"), "{}", shown.stdout);
}

#[test]
fn from_env_builds_an_adhoc_profile_from_database_url() {
    let dir = harness::TempDir::new("adhoc");
    let run = Tool::new("dbenv")
        .args(["resolve", "--from-env"])
        .current_dir(&dir.path)
        .env(
            "DATABASE_URL",
            "postgres://app:pw@db.example.com:6432/appdb?sslmode=require",
        )
        .run();
    let profile = run.expect(0).json();
    assert_eq!(
        profile["env"], "adhoc",
        "an ad-hoc database is not assumed to be dev"
    );
    assert_eq!(
        profile["protection"], "confirm",
        "an unknown database is treated with care"
    );
    assert_eq!(profile["conn"]["port"], 6432);
    assert_eq!(profile["conn"]["sslmode"], "require");
    // Where libpq finds the password: the URL in DATABASE_URL; the profile carries no password.
    assert_eq!(profile["secret"]["source"], "url");
    assert_eq!(profile["secret"]["ref"], "DATABASE_URL");
    assert!(
        !run.stdout.contains(":pw@") && !run.stdout.contains("\"pw\""),
        "{}",
        run.stdout
    );
}

#[test]
fn an_unwritable_state_dir_is_a_clear_error() {
    let project = Project::new(REMOTE);
    let blocker = project.path().join("not-a-dir");
    std::fs::write(&blocker, "file in the way").unwrap();
    let run = project
        .tool("dbenv")
        .args(["export", "dev"])
        .env("DEV_DB_PASSWORD", "x")
        .env("DBTOOLS_STATE_DIR", blocker.join("state"))
        .run();
    run.expect_text_error("dbenv", 2, "cannot write state dir");
}

#[test]
fn from_env_reads_libpq_variables_and_takes_protection_from_config() {
    let project = Project::new(REMOTE);
    let run = project
        .tool("dbenv")
        .args(["resolve", "--from-env", "prod"])
        .env("PGHOST", "10.0.0.5")
        .env("PGPORT", "6543")
        .env("PGDATABASE", "appdb")
        .env("PGUSER", "app")
        .env("PGPASSWORD", "pw")
        .run();
    let profile = run.expect(0).json();
    assert_eq!(profile["env"], "prod");
    assert_eq!(
        profile["protection"], "locked",
        "a known env keeps its protection"
    );
    assert_eq!(profile["conn"]["host"], "10.0.0.5");
    assert_eq!(profile["conn"]["port"], 6543);
    assert_eq!(
        profile["conn"]["sslmode"], "verify-full",
        "remote hosts default to verify-full"
    );
    assert_eq!(profile["secret"]["ref"], "PGPASSWORD");
    let bad = project
        .tool("dbenv")
        .args(["resolve", "--from-env"])
        .env("PGHOST", "h")
        .env("PGPORT", "x")
        .run();
    bad.expect_error("dbenv", 2, "PGPORT \"x\" is not a port number");
    let none = project.tool("dbenv").args(["resolve", "--from-env"]).run();
    none.expect_error(
        "dbenv",
        2,
        "none of DATABASE_URL, PGHOST or PGSERVICE is set",
    );
}

#[test]
fn export_env_clears_what_would_override_it_and_never_selects_an_env() {
    let project = Project::new(REMOTE);
    let run = project
        .tool("dbenv")
        .args(["export", "dev"])
        .env("DEV_DB_PASSWORD", "pw")
        .run();
    let text = &run.expect(0).stdout;
    assert!(
        text.contains("unset PGPASSWORD PGHOSTADDR PGSERVICE\n"),
        "a stale PGPASSWORD would win over the pgpass file: {text}"
    );
    assert!(
        !text.contains("DBTOOLS_ENV"),
        "eval-ing an export must not change which env later commands pick: {text}"
    );
    let no_root = Project::new(
        "[env.dev]\nhost = \"127.0.0.1\"\ndatabase = \"d\"\nuser = \"u\"\nsslmode = \"disable\"\n",
    );
    let plain = no_root.tool("dbenv").args(["export", "dev"]).run();
    let text = &plain.expect(0).stdout;
    assert!(
        text.contains("unset PGPASSWORD PGHOSTADDR PGSERVICE PGSSLROOTCERT PGPASSFILE\n"),
        "{text}"
    );
}

#[test]
fn text_exports_keep_error_objects_out_of_eval() {
    let project = Project::new(REMOTE);
    for format in ["env", "url", "pgpass", "service"] {
        let run = project
            .tool("dbenv")
            .args(["export", "staging", "-f", format])
            .run();
        run.expect_text_error("dbenv", 2, "unknown env \"staging\"");
    }
    let json = project
        .tool("dbenv")
        .args(["export", "staging", "-f", "json"])
        .run();
    json.expect_error("dbenv", 2, "unknown env \"staging\"");
}

#[test]
fn sslrootcert_system_is_a_file_older_libpq_can_read() {
    let project = Project::new(
        "[env.dev]\nhost = \"db.example.com\"\ndatabase = \"d\"\nuser = \"u\"\nsslrootcert = \"system\"\n",
    );
    let run = project.tool("dbenv").args(["export", "dev"]).run();
    let text = &run.expect(0).stdout;
    let root = text
        .lines()
        .find_map(|l| l.strip_prefix("export PGSSLROOTCERT="))
        .unwrap_or_else(|| panic!("{text}"))
        .trim_matches('\'');
    assert_ne!(root, "system", "psql 15 would look for a file named system");
    assert!(std::path::Path::new(root).is_file(), "{root}");
}

#[test]
fn an_existing_state_dir_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let project = Project::new(REMOTE);
    let shared = harness::TempDir::new("shared-state");
    std::fs::set_permissions(&shared.path, std::fs::Permissions::from_mode(0o1777)).unwrap();
    project
        .tool("dbenv")
        .args(["export", "dev"])
        .env("DEV_DB_PASSWORD", "pw")
        .env("DBTOOLS_STATE_DIR", &shared.path)
        .run()
        .expect(0);
    let mode = std::fs::metadata(&shared.path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o7777,
        0o1777,
        "a /tmp-like dir keeps its sticky bit"
    );
    let pgpass_dir = std::fs::metadata(shared.path.join("pgpass")).unwrap();
    assert_eq!(pgpass_dir.permissions().mode() & 0o777, 0o700);
}

#[test]
fn the_app_user_cannot_be_the_master_user() {
    let project = Project::new(
        "[env.dev]\ninstance = \"i\"\ndatabase = \"d\"\nuser = \"postgres\"\n[instance.i]\nprovider = \"local\"\n",
    );
    project.tool("dbenv").args(["list"]).run().expect_error(
        "dbenv",
        2,
        "user \"postgres\" is instance i's master user",
    );
}

/// On a terminal a password shows only with --reveal, and only where it is asked for by name
/// (`export --format url|pgpass`); a profile never shows one. `script` gives the tool a real
/// pseudo-terminal.
#[test]
fn a_terminal_sees_no_password_without_reveal() {
    let project = Project::new(REMOTE);
    let on_terminal = |args: &str| {
        let command = format!("{} {args}", harness::bin("dbenv").display());
        let run = Tool::program("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(project.path())
            .env("DEV_DB_PASSWORD", "terminal-secret-42")
            .run();
        run.expect(0);
        run.stdout
    };
    for shown in [
        on_terminal("resolve dev --json"),
        on_terminal("resolve dev"),
        on_terminal("export dev --format json"),
        on_terminal("export dev --format url"),
        on_terminal("export dev --format pgpass"),
    ] {
        assert!(!shown.contains("terminal-secret-42"), "{shown}");
    }
    let url = on_terminal("export dev --format url");
    assert!(url.contains(":********@db.dev.example.com"), "{url}");
    let revealed = on_terminal("export dev --format url --reveal");
    assert!(revealed.contains("terminal-secret-42"), "{revealed}");
    let revealed = on_terminal("export dev --format pgpass --reveal");
    assert!(revealed.contains(":terminal-secret-42"), "{revealed}");
}

#[test]
fn usage_errors_are_one_prefixed_line() {
    let run = Tool::new("dbenv").args(["export", "-f", "yaml"]).run();
    run.expect_error("dbenv", 2, "invalid value 'yaml' for '--format <FORMAT>'");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}
