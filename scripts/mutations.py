#!/usr/bin/env python3
"""Breaks README's claims on purpose, one at a time, and checks that the test backing each
claim then fails: a test that still passes with its claim broken proves nothing.

    python3 scripts/mutations.py            # every mutation (about 6 minutes on a warm build)
    python3 scripts/mutations.py --list
    python3 scripts/mutations.py --only plain-password-to-the-server

Each mutation edits one file (an exact text, found once), builds (which must succeed: a
mutation that does not compile proves nothing), runs the test that backs the claim, expects it
to FAIL, and puts the file back whatever happens. Needs a clean work tree (the file is
restored with `git checkout`) and what `make test` needs (scripts/setup-test.sh). Not part of
`make test`. First every test must pass on the unchanged tree. Then one line per mutation:
`caught` (the test failed, saying what the claim's test says), `SURVIVED`, `ELSEWHERE` (it
failed for another reason) or `BROKEN` (the mutation does not build); exit 1 unless every one
was caught.
"""
import argparse
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The tools and every end-to-end test binary: the test run that follows compiles nothing.
BUILD = "cargo build -q --workspace --bins && cargo test -q --no-run -p dbtools-e2e"
E2E = "cargo test -q -p dbtools-e2e "
WINDOWS = "bash scripts/windows/build.sh"

# (name, the claim, file, text, replacement, the build that must pass, the test that must fail,
#  what its output must then say: the test fails for the claim, not for another reason)
MUTATIONS = [
    (
        "minor-upgrade-is-drift",
        "a minor version upgrade AWS made by itself is no drift",
        "tools/rdsprov/src/aws/attributes.rs",
        "        drift: Drift::SameMajorAtLeast,",
        "        drift: Drift::Exact,",
        BUILD,
        E2E + "--test aws_provider -- aws_s_own_moves",
        "up_to_date",
    ),
    (
        "envs-one-after-another",
        "rdsprov apply of several envs runs them at once, one env's failure leaving the others whole",
        "tools/rdsprov/src/aws/progress.rs",
        "    if items.len() == 1 {",
        "    if !items.is_empty() {\n        return items.iter().map(|item| (env_of(item), work(item))).collect();\n    }\n    if items.len() == 1 {",
        BUILD,
        E2E + "--test aws_provider -- several_envs_apply_at_once",
        "the envs ran one after the other, not at once",
    ),
    (
        "plan-asks-aws",
        "rdsprov's steps run one way (observe → plan → apply) and the plan makes no AWS call",
        "tools/rdsprov/src/aws/plan.rs",
        "use crate::aws::target;\n",
        "use crate::aws::target;\n#[allow(unused_imports)]\nuse crate::aws::observe::observe as _observe;\n",
        "cargo build -q -p rdsprov",
        "cargo test -q -p rdsprov -- layering",
        "aws::plan must not reach aws::observe",
    ),
    (
        "attribute-applied-at-the-wrong-time",
        "each RDS attribute is planned with when AWS applies it, on both kinds of target",
        "tools/rdsprov/src/aws/attributes.rs",
        "            timing: Timing::Window,\n            read: |db| {\n                db.iam_database_authentication_enabled()",
        "            timing: Timing::Immediately,\n            read: |db| {\n                db.iam_database_authentication_enabled()",
        "cargo build -q -p rdsprov",
        "cargo test -q -p rdsprov -- plan::tests",
        "iam_auth",
    ),
    (
        "pass-runs-on-the-wrong-major",
        "make test's PostgreSQL 18 pass runs the tools' servers on 18",
        "tests/src/lib.rs",
        '(key.starts_with("DBTOOLS_") && key != "DBTOOLS_PG_BIN")',
        'key.starts_with("DBTOOLS_")',
        BUILD,
        "DBTOOLS_PG_BIN=$PWD/node_modules/pg18/native/bin DBTOOLS_TEST_PG_MAJOR=18 "
        + E2E + "--test local_provider -- apply_provisions_tls_instances",
        "this pass asked for PostgreSQL",
    ),
    (
        "plain-password-to-the-server",
        "the plain password never reaches the server's files or logs",
        "tools/rdsprov/src/tenancy.rs",
        "quote_literal(&verifier)",
        "quote_literal(&password)",
        BUILD,
        E2E + "--test local_provider -- plain_passwords_never_reach",
        "holds a plain password",
    ),
    (
        "password-on-psql-argv",
        "psql and pg_dump get the password in their environment, never on a command line",
        "shared/src/pg.rs",
        "Some(password) => command.env(PGPASSWORD, password),",
        'Some(password) => command.env(PGPASSWORD, password).arg(format!("--set=pw={password}")),',
        BUILD,
        E2E + "--test connect -- psql_runs_with_the_password",
        "psql had the password on its command line",
    ),
    (
        "a-second-apply-mutates",
        "a second apply makes no mutating call",
        "tools/rdsprov/src/aws/apply.rs",
        "    // Security group: created with the spec's rules, or its spec rules brought in line.\n",
        "    // Security group: created with the spec's rules, or its spec rules brought in line.\n"
        "    let _ = aws.block_on(aws.ec2.create_tags().resources(&observed.vpc_id).set_tags(Some(tags_ec2(spec))).send());\n",
        BUILD,
        E2E + "--test aws_provider -- plan_apply_plan_modify_and_a_second_apply",
        "mutating calls:",
    ),
    (
        "a-seed-commits-with-its-statements",
        "dbseed killed mid-seed leaves nothing of that seed",
        "tools/dbseed/src/engine.rs",
        '.simple_query(&format!("{text}\\n;"))',
        '.simple_query(&format!("{text}\\n;COMMIT;BEGIN;"))',
        BUILD,
        E2E + "--test seed -- kill_9_mid_seed",
        "left: \"1\"",
    ),
    (
        "a-dead-client-s-statement-runs-on",
        "dbmigrate killed mid-statement: the server ends the dead client's session, not the statement's 300 s",
        "tools/dbmigrate/src/engine.rs",
        "WHERE name = 'client_connection_check_interval';",
        "WHERE name = 'no_such_setting';",
        BUILD,
        E2E + "--test migrate_safety -- kill_9_mid_batch",
        "the server ending the dead client's session: never happened",
    ),
    (
        "an-empty-pipe-falls-back-to-dev",
        "an empty pipe is an error for every tool that reads a profile, never a fallback to dev",
        "shared/src/input.rs",
        "    if bytes.iter().all(u8::is_ascii_whitespace) {\n        return Err(",
        "    if bytes.iter().all(u8::is_ascii_whitespace) {\n        return Ok(None);\n    }\n    if bytes.is_empty() {\n        return Err(",
        BUILD,
        E2E + "--test stdin_contract -- an_empty_pipe",
        "stderr lacks",
    ),
    (
        "checksum-sees-crlf",
        "a CRLF or BOM checkout of a migration is the same migration (fuzzed)",
        "shared/src/migration_files.rs",
        '        .replace("\\r\\n", "\\n");\n    let digest',
        '        .to_string();\n    let digest',
        BUILD,
        "FUZZ_SECONDS=30 bash scripts/fuzz.sh",
        "CRLF or a BOM changed the checksum",
    ),
    (
        "host-name-message",
        "verify-full says which host name the certificate lacks",
        "shared/src/pg.rs",
        '"the certificate does not name {} (verify-full checks the host name)',
        '"the certificate is wrong for {} (verify-full checks the host name)',
        BUILD,
        E2E + "--test connect -- verify_full_checks_the_host_name",
        "the certificate does not name 127.0.0.2",
    ),
    (
        "config-error-without-key",
        "a malformed config names the file, the line and the key",
        "shared/src/config.rs",
        'Some(key) => format!("line {line}, key {key}: "),',
        'Some(_) => format!("line {line}: "),',
        BUILD,
        E2E + "--test dbenv -- malformed_config",
        "line 2, key host",
    ),
    (
        "case-blind-env-validation",
        "the PowerShell wrappers accept -Env only in lower case",
        "ops/aws/Connect-Db.ps1",
        "[ValidatePattern('(?-i)^",
        "[ValidatePattern('^",
        BUILD,
        E2E + "--test powershell -- the_wrappers_parse",
        "ignores case",
    ),
    (
        "proxy-miscounts-turns",
        "the benchmarks' proxy counts a client's turns exactly",
        "scripts/bench/latency_proxy.py",
        "        if self.server_spoke_last:\n            self.counter",
        "        if True:\n            self.counter",
        "true",
        E2E + "--test bench_proxy -- counts_each_client_turn",
        "three turns on one connection",
    ),
    (
        "windows-secret-readable",
        "on Windows a secret file's access list names the current user alone",
        "shared/src/windows.rs",
        "let sddl = crate::state::private_sddl(&current_user_sid()?, path.is_dir());",
        'let sddl = crate::state::private_sddl(&current_user_sid()?, path.is_dir()).replace("D:P(", "D:(A;;FA;;;WD)(");',
        WINDOWS + " && " + BUILD,
        E2E + "--test windows -- windows_tools_find_the_config",
        "Everyone may read the password file",
    ),
    (
        "pending-is-drift",
        "a change left for the maintenance window at the spec's value is no drift",
        "tools/rdsprov/src/aws/plan.rs",
        "            let will_have = pending.get(&row.name).or(from);",
        "            let will_have = from;",
        BUILD,
        E2E + "--test aws_provider -- the_example_spec_applies",
        "a class change waiting for the window",
    ),
    (
        "members-before-their-cluster",
        "an Aurora restore creates members only once the restored cluster is available",
        "tools/rdsprov/src/aws/restore.rs",
        '            let ready = state.status == "available";',
        '            let ready = !state.status.is_empty();',
        BUILD,
        E2E + "--test aws_provider -- an_aurora_restore_waits",
        "InvalidDBClusterStateFault",
    ),
    (
        "major-upgrade-not-allowed",
        "a major upgrade is sent with AllowMajorVersionUpgrade",
        "tools/rdsprov/src/aws/target/instance.rs",
        "        .set_allow_major_version_upgrade(attributes::crosses_major(modify.changes).then_some(true));",
        "        .set_allow_major_version_upgrade(None);",
        BUILD,
        E2E + "--test aws_provider -- a_major_upgrade_brings",
        "AllowMajorVersionUpgrade flag must be present",
    ),
    (
        "parameters-in-one-call",
        "parameters are set at most 20 a call",
        "tools/rdsprov/src/aws/apply.rs",
        "const PARAMETERS_PER_CALL: usize = 20;",
        "const PARAMETERS_PER_CALL: usize = 40;",
        BUILD,
        E2E + "--test aws_provider -- engine_versions_and_parameter",
        "a request modifies at most 20",
    ),
    (
        "a-major-takes-the-oldest-minor",
        "a major alone takes the newest minor AWS offers",
        "tools/rdsprov/src/aws/offer.rs",
        "        return same_major.last().map(|v| v.to_string()).ok_or_else(|| {",
        "        return same_major.first().map(|v| v.to_string()).ok_or_else(|| {",
        BUILD,
        E2E + "--test aws_provider -- engine_versions_and_parameter",
        "the newest 16 offered",
    ),
]


def sh(command):
    return subprocess.run(command, shell=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def run(command):
    done = subprocess.run(command, shell=True, cwd=REPO, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--only", action="append", default=[])
    a = ap.parse_args()
    chosen = [m for m in MUTATIONS if not a.only or m[0] in a.only]
    if a.list:
        for name, claim, path, *_ in MUTATIONS:
            print(f"{name:40} {path:36} {claim}")
        return 0
    if a.only and len(chosen) != len(a.only):
        sys.exit(f"mutations: unknown name in {a.only}: --list shows them")
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                           capture_output=True, text=True).stdout
    if dirty.strip():
        sys.exit("mutations: the work tree has changes: commit or stash them first (each file is restored with git checkout)")
    # Each test passes on the tree as it is: a test failing anyway would make its mutation
    # look caught.
    for build, command in dict.fromkeys((m[5], m[6]) for m in chosen):
        if sh(build) != 0 or sh(command) != 0:
            sys.exit(f"mutations: on the unchanged tree `{command}` fails: fix that first")
    survived = []
    for name, claim, path, text, replacement, build, command, expect in chosen:
        full = os.path.join(REPO, path)
        with open(full, encoding="utf-8") as f:
            original = f.read()
        if original.count(text) != 1:
            sys.exit(f"mutations: {name}: the text to change is not in {path} exactly once; update the mutation")
        try:
            with open(full, "w", encoding="utf-8") as f:
                f.write(original.replace(text, replacement))
            built = sh(build)
            code, output = run(command) if built == 0 else (None, "")
        finally:
            subprocess.run(["git", "checkout", "--", path], cwd=REPO, check=True)
        if code is None:
            verdict = "BROKEN"  # the mutation itself does not build: fix the mutation
            survived.append(name)
        elif code != 0 and expect in output:
            verdict = "caught"
        elif code != 0:
            verdict = "ELSEWHERE"  # it failed, but not saying what the claim's test says
            survived.append(name)
        else:
            verdict = "SURVIVED"
            survived.append(name)
        print(f"{verdict:8} {name:40} {claim}", flush=True)
    # The last builds were of mutated trees: build the real one again, Windows binaries too.
    for build in dict.fromkeys(m[5] for m in chosen):
        sh(build)
    print(f"mutations: {len(chosen) - len(survived)} caught, {len(survived)} survived or did not build")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
