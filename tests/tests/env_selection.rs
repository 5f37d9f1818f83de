//! The one rule for where a tool's env comes from, without a terminal (cron, CI, `ssh -n`):
//! `--env` never reads stdin; a pipe or file is read; `/dev/null` counts as empty, and then
//! `DBTOOLS_ENV`, then dev. An empty pipe is an error, never a fallback; a piped profile for
//! another env than `DBTOOLS_ENV` is an error naming both; an unknown env says where its name
//! came from. `dbconnect url` shows which env was chosen without needing a server.

use harness::{Project, Tool};
use std::time::Duration;

const TWO_ENVS: &str = r#"app = "combine"
[env.dev]
host = "dev.example.com"
database = "combine_dev"
user = "combine_app"
secret = "env:DEV_PW"
[env.test]
host = "test.example.com"
database = "combine_test"
user = "combine_app"
secret = "env:TEST_PW"
"#;

fn url(project: &Project) -> Tool {
    project
        .tool("dbconnect")
        .args(["url"])
        .env("DEV_PW", "dev-secret")
        .env("TEST_PW", "test-secret")
}

fn host_of(run: &harness::Run) -> String {
    run.expect(0);
    let url = run.stdout.trim();
    url.split('@').nth(1).unwrap_or(url).to_string()
}

#[test]
fn dev_null_stdin_uses_dbtools_env_then_dev() {
    let project = Project::new(TWO_ENVS);
    let chosen = url(&project).env("DBTOOLS_ENV", "test").stdin_null().run();
    assert!(
        host_of(&chosen).starts_with("test.example.com"),
        "{chosen:?}"
    );
    let chosen = url(&project).stdin_null().run();
    assert!(
        host_of(&chosen).starts_with("dev.example.com"),
        "{chosen:?}"
    );
}

#[test]
fn an_empty_pipe_is_an_error_not_a_fallback() {
    let project = Project::new(TWO_ENVS);
    for env in [None, Some("test")] {
        let mut tool = url(&project);
        if let Some(env) = env {
            tool = tool.env("DBTOOLS_ENV", env);
        }
        tool.run()
            .expect_text_error("dbconnect", 2, "stdin is an empty pipe or file");
    }
}

#[test]
fn a_piped_profile_for_another_env_than_dbtools_env_names_both() {
    let project = Project::new(TWO_ENVS);
    let test = project
        .tool("dbenv")
        .args(["resolve", "test"])
        .env("TEST_PW", "test-secret")
        .run();
    test.expect(0);
    url(&project)
        .env("DBTOOLS_ENV", "dev")
        .stdin(test.stdout.clone())
        .run()
        .expect_text_error(
            "dbconnect",
            2,
            "the profile on stdin is for env \"test\" but DBTOOLS_ENV is \"dev\"",
        );
    let same = url(&project)
        .env("DBTOOLS_ENV", "test")
        .stdin(test.stdout.clone())
        .run();
    assert!(host_of(&same).starts_with("test.example.com"), "{same:?}");
    let piped = url(&project).stdin(test.stdout).run();
    assert!(host_of(&piped).starts_with("test.example.com"), "{piped:?}");
}

#[test]
fn env_flag_never_reads_stdin_even_an_open_pipe() {
    let project = Project::new(TWO_ENVS);
    let run = url(&project)
        .args(["--env", "test"])
        .env("DBTOOLS_ENV", "dev")
        .stdin_held_open()
        .run_within(
            Duration::from_secs(60),
            "dbconnect url --env with stdin held open",
        );
    assert!(host_of(&run).starts_with("test.example.com"), "{run:?}");
}

#[test]
fn an_unknown_env_says_where_its_name_came_from() {
    let project = Project::new(TWO_ENVS);
    url(&project)
        .env("DBTOOLS_ENV", "staging")
        .stdin_null()
        .run()
        .expect_text_error(
            "dbconnect",
            2,
            "unknown env \"staging\" (named by DBTOOLS_ENV)",
        );
    url(&project)
        .args(["--env", "stage"])
        .run()
        .expect_text_error("dbconnect", 2, "unknown env \"stage\" (named by --env)");
    let no_dev = Project::new(&TWO_ENVS.replace("[env.dev]", "[env.qa]"));
    url(&no_dev).stdin_null().run().expect_text_error(
        "dbconnect",
        2,
        "unknown env \"dev\" (the default env: neither --env nor DBTOOLS_ENV was given)",
    );
    project
        .tool("dbenv")
        .args(["resolve"])
        .env("DBTOOLS_ENV", "staging")
        .run()
        .expect_error("dbenv", 2, "unknown env \"staging\" (named by DBTOOLS_ENV)");
}
