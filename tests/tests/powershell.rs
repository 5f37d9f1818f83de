//! The PowerShell wrappers in ops/aws, checked without PowerShell (it cannot be installed on
//! this build machine): parsed with a real PowerShell grammar (tree-sitter-powershell, from the
//! project's set-up), advanced scripts with SupportsShouldProcess, and every dbtools command
//! line they build naming a real subcommand and real flags of the built binaries. The checker
//! itself is shown to reject a broken script, an unknown flag and an unknown subcommand.

use harness::{TempDir, Tool};

fn check(dir: &std::path::Path) -> harness::Run {
    Tool::program("python3")
        .arg_path(&harness::repo_root().join("scripts/check_ps1.py"))
        .arg_path_flag("--bin-dir", &harness::bin_dir())
        .arg_path_flag("--dir", dir)
        .run()
}

#[test]
fn the_wrappers_parse_and_call_real_commands() {
    let run = check(&harness::repo_root().join("ops/aws"));
    let stdout = run.expect(0).stdout.clone();
    assert!(
        stdout.contains("10 files parse as PowerShell")
            && stdout.contains("dbtools command lines name real subcommands and flags"),
        "{stdout}"
    );
    // The migrate wrapper is the make flow's pipeline, snapshot step included.
    let migrate =
        std::fs::read_to_string(harness::repo_root().join("ops/aws/Invoke-DbMigrate.ps1")).unwrap();
    for step in [
        "Invoke-DbTool dbenv @('resolve', $Env, '--json')",
        "Invoke-DbTool dbmigrate @('status', '--json') -InputJson $dbProfile",
        "Invoke-DbTool rdsprov @('snapshot', '--before-migrate', '--json') -InputJson $status",
        "Invoke-DbTool dbmigrate @('up', '--json') -InputJson $snapshotted",
    ] {
        assert!(migrate.contains(step), "{step}");
    }
}

#[test]
fn the_checker_rejects_what_would_fail_on_windows() {
    let dir = TempDir::new("ps1");
    let common = harness::repo_root().join("ops/aws/DbTools.Common.ps1");
    std::fs::copy(&common, dir.path.join("DbTools.Common.ps1")).unwrap();
    let script = |body: &str| {
        format!(
            "[CmdletBinding(SupportsShouldProcess)]\nparam(\n    [ValidatePattern('(?-i)^[a-z]+$')]\n    [string] $Env\n)\n. (Join-Path $PSScriptRoot 'DbTools.Common.ps1')\n{body}\n"
        )
    };
    std::fs::write(
        dir.path.join("Broken.ps1"),
        script("if ($Env {\n    Invoke-DbTool dbenv @('list')\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path.join("BadFlag.ps1"),
        script("Invoke-DbTool dbmigrate @('up', '--no-such-flag')"),
    )
    .unwrap();
    std::fs::write(
        dir.path.join("BadCommand.ps1"),
        script("Invoke-DbTool rdsprov @('explode', '--json')"),
    )
    .unwrap();
    std::fs::write(
        dir.path.join("Password.ps1"),
        script("Invoke-DbTool dbenv @('resolve', '--password', 'hunter2')"),
    )
    .unwrap();
    std::fs::write(
        dir.path.join("Leaky.ps1"),
        script("Invoke-DbTool dbconnect @('check', '--json')"),
    )
    .unwrap();
    std::fs::write(
        dir.path.join("Plain.ps1"),
        "param([string] $Env)\nInvoke-DbTool dbenv @('list')\n",
    )
    .unwrap();
    // A flag only a longer one starts with (`--exit` of `--exit-code`), and one built in a
    // variable.
    std::fs::write(
        dir.path.join("PrefixFlag.ps1"),
        script("Invoke-DbTool dbmigrate @('status', '--exit') -Final"),
    )
    .unwrap();
    std::fs::write(
        dir.path.join("VariableFlag.ps1"),
        script("$extra = @('--no-such-flag')\nInvoke-DbTool dbmigrate (@('up') + $extra) -Final"),
    )
    .unwrap();
    // A property an error object lacks, read under StrictMode without looking first.
    std::fs::write(
        dir.path.join("Unguarded.ps1"),
        script(
            "$answer = Invoke-DbTool dbenv @('list', '--json') | ConvertFrom-Json\n$answer.envs",
        ),
    )
    .unwrap();
    // ValidatePattern without (?-i): `-Env TEST` would pass.
    std::fs::write(
        dir.path.join("CaseBlind.ps1"),
        script("Invoke-DbTool dbenv @('list')").replace("(?-i)", ""),
    )
    .unwrap();
    // Non-ASCII in a file without a byte-order mark.
    std::fs::write(
        dir.path.join("Ansi.ps1"),
        script("# caf\u{e9}\nInvoke-DbTool dbenv @('list')"),
    )
    .unwrap();
    let run = check(&dir.path);
    run.expect(1);
    for problem in [
        "PrefixFlag.ps1:7: `dbmigrate status` has no flag --exit",
        "VariableFlag.ps1:8: `dbmigrate up` has no flag --no-such-flag",
        "Unguarded.ps1:8: $answer.envs read without checking it exists",
        "CaseBlind.ps1:1: -Env's ValidatePattern ignores case",
        "Ansi.ps1:7: non-ASCII text in a file without a UTF-8 byte-order mark",
        "Broken.ps1:7:",
        "does not parse as PowerShell",
        "BadFlag.ps1:7: `dbmigrate up` has no flag --no-such-flag",
        "BadCommand.ps1:7: `rdsprov explode`: no such subcommand",
        "Password.ps1:7: a password on a command line: '--password'",
        "Leaky.ps1:7: returns a result carrying the profile's password to the user: add -Final",
        "Plain.ps1:1: not an advanced script with [CmdletBinding(SupportsShouldProcess)]",
        "Plain.ps1:1: -Env is not validated",
    ] {
        assert!(run.stdout.contains(problem), "{problem}\n{}", run.stdout);
    }
}
