//! Bad input on stdin: each tool that reads a profile (dbconnect, dbmigrate, dbseed, dbguard)
//! refuses it with exit 2, one `<tool>: …` line on stderr and the error object on stdout, and
//! does nothing.

use harness::Tool;

/// Every tool that reads a profile on stdin, with a command that does.
const READERS: &[(&str, &[&str])] = &[
    ("dbconnect", &["check"]),
    ("dbmigrate", &["status"]),
    ("dbseed", &["status"]),
    ("dbguard", &["check", "--action", "read"]),
];

fn check_with_stdin(input: &[u8]) -> harness::Run {
    Tool::new("dbconnect")
        .args(["check"])
        .stdin(input.to_vec())
        .run()
}

/// `input` on stdin is refused by every reader: exit 2, its own one-line message holding
/// `needle`, the error object on stdout.
fn refused_by_every_reader(input: &[u8], needle: &str) {
    for (tool, args) in READERS {
        Tool::new(tool)
            .args(*args)
            .stdin(input.to_vec())
            .run()
            .expect_error(tool, 2, needle);
    }
}

#[test]
fn an_empty_pipe_says_the_command_before_printed_nothing() {
    refused_by_every_reader(
        b"",
        "stdin is an empty pipe or file: the command before `|` printed nothing",
    );
}

#[test]
fn two_objects_are_refused() {
    let profile = r#"{"kind":"dbtools.profile/v2","env":"dev","protection":"open","conn":{"host":"127.0.0.1","port":1,"dbname":"d","user":"u","sslmode":"disable"}}"#;
    refused_by_every_reader(
        format!("{profile}\n{profile}").as_bytes(),
        "more than one JSON object",
    );
}

#[test]
fn invalid_json_names_line_and_column() {
    refused_by_every_reader(b"{\"kind\": \n  oops}", "line 2, column");
}

#[test]
fn unknown_kind_and_newer_major_are_refused() {
    refused_by_every_reader(br#"{"kind":"someone.else/v1"}"#, "unknown message kind");
    refused_by_every_reader(
        br#"{"kind":"dbtools.profile/v9"}"#,
        "newer version than this tool reads",
    );
}

#[test]
fn a_result_without_profile_is_refused() {
    refused_by_every_reader(
        br#"{"kind":"dbtools.env.list/v1","envs":[]}"#,
        "carries no profile",
    );
}

#[test]
fn an_upstream_error_passes_through_with_its_code_and_no_second_message() {
    for (tool, args) in READERS {
        let run = Tool::new(tool)
            .args(*args)
            .stdin(
                br#"{"kind":"dbtools.error/v1","tool":"dbenv","code":4,"message":"instance down"}"#
                    .to_vec(),
            )
            .run();
        run.expect(4);
        assert_eq!(
            run.stderr, "",
            "{tool}: the upstream tool already reported it"
        );
        assert_eq!(run.json()["tool"], "dbenv", "{tool}");
    }
}

#[test]
fn a_failing_dbenv_makes_the_pipeline_fail_with_its_code() {
    let project =
        harness::Project::new("[env.dev]\nhost = \"127.0.0.1\"\ndatabase = \"d\"\nuser = \"u\"\n");
    let resolve = project.tool("dbenv").args(["resolve", "staging"]).run();
    resolve.expect_error("dbenv", 2, "unknown env \"staging\"");
    let check = Tool::new("dbconnect")
        .args(["check"])
        .stdin(resolve.stdout.clone())
        .run();
    check.expect(2);
    assert_eq!(check.stderr, "");
}

#[test]
fn utf16_profile_from_windows_powershell_is_read() {
    // A closed port: reaching the connect step proves the UTF-16 profile was understood.
    let port = harness::closed_port();
    let profile = format!(
        r#"{{"kind":"dbtools.profile/v2","env":"dev","protection":"open","app":"ünïcødé","conn":{{"host":"127.0.0.1","port":{port},"dbname":"d","user":"u","sslmode":"disable"}}}}"#
    );
    let mut bytes = vec![0xFF, 0xFE];
    for unit in profile.encode_utf16() {
        bytes.extend(unit.to_le_bytes());
    }
    check_with_stdin(&bytes).expect_error("dbconnect", 4, "connection refused");
}

#[test]
fn usage_errors_exit_2() {
    let run = Tool::new("dbenv")
        .args(["export", "dev", "--format", "yaml"])
        .run();
    run.expect(2);
    assert!(
        run.stderr.contains("invalid value 'yaml'"),
        "{}",
        run.stderr
    );
    Tool::new("rdsprov").args(["--help"]).run().expect(0);
}

/// A piped profile cannot lower a guard: its env must exist in the project's config, and the
/// config's protection wins when it is stricter than what the profile claims.
#[test]
fn a_piped_profile_cannot_lower_the_guard() {
    let project = harness::Project::local_dev_test();
    let profile = |env: &str, protection: &str| {
        format!(
            r#"{{"kind":"dbtools.profile/v2","env":"{env}","protection":"{protection}","conn":{{"host":"127.0.0.1","port":1,"dbname":"d","user":"u","sslmode":"disable"}}}}"#
        )
    };
    project
        .tool("dbconnect")
        .args(["check"])
        .stdin(profile("staging", "open"))
        .run()
        .expect_error(
            "dbconnect",
            2,
            "the profile on stdin is for env \"staging\", which this project does not define",
        );
    project
        .tool("dbmigrate")
        .args(["down"])
        .stdin(profile("test", "open"))
        .run()
        .expect_error("dbmigrate", 3, "add --confirm test");
}

/// Every kind a tool writes is one a tool reads: a doctor's report (or an access result)
/// carries its profile on, as any result does.
#[test]
fn a_doctor_report_carries_its_profile_on() {
    let report = r#"{"kind":"dbtools.doctor/v1","env":"dev","ok":true,"code":0,"steps":[],"profile":{"kind":"dbtools.profile/v2","env":"dev","protection":"open","conn":{"host":"db.example.com","port":5432,"dbname":"d","user":"u","sslmode":"verify-full"}}}"#;
    let run = Tool::new("dbconnect").args(["url"]).stdin(report).run();
    assert_eq!(
        run.expect(0).stdout.trim(),
        "postgres://u@db.example.com:5432/d?sslmode=verify-full"
    );
}

/// An error object piped in is never a success, whatever code it claims.
#[test]
fn an_error_object_with_code_zero_is_still_an_error() {
    let error = r#"{"kind":"dbtools.error/v1","tool":"dbenv","code":0,"message":"it broke"}"#;
    let run = check_with_stdin(error.as_bytes());
    assert_eq!(run.code, 5, "{run:?}");
}
