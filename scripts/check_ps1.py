#!/usr/bin/env python3
"""Checks the PowerShell wrappers in ops/aws without PowerShell (which cannot be installed on
every build machine): each file is parsed with a real PowerShell grammar (tree-sitter-powershell)
and must parse without an error node; each wrapper script is an advanced script with
[CmdletBinding(SupportsShouldProcess ...)] and a param block, validates its -Env, dot-sources
the common helper, and puts no password on a command line; and every dbtools command line it
builds names a real subcommand and real flags — asked of the built binaries' --help.

    check_ps1.py --bin-dir target/debug [--dir ops/aws]

Prints one line per problem (file:line: what) and exits 1 when there is any; else one summary
line and exit 0.
"""
import argparse
import pathlib
import re
import subprocess
import sys

try:
    import tree_sitter_powershell
    from tree_sitter import Language, Parser
except ImportError:
    sys.exit("check_ps1: needs the PowerShell grammar: pip install tree-sitter tree-sitter-powershell (scripts/setup-test.sh does)")

TOOLS = {"dbenv", "dbconnect", "dbmigrate", "dbseed", "dbguard", "rdsprov"}
COMMON = "DbTools.Common.ps1"


def parse_errors(tree):
    """(line, column, text) of every ERROR or missing node."""
    found = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            text = node.text.decode("utf-8", "replace").splitlines()
            found.append((node.start_point[0] + 1, node.start_point[1] + 1, text[0][:50] if text else ""))
        stack.extend(node.children)
    return sorted(found)


def literals(text):
    return re.findall(r"'([^']*)'", text)


def invocations(source):
    """(line, tool, argument literals) of each command line a wrapper runs."""
    arrays = {}
    for match in re.finditer(r"\$(\w+)\s*\+?=\s*@\(([^)]*)\)", source):
        arrays.setdefault(match.group(1).lower(), []).extend(literals(match.group(2)))
    calls = []
    for match in re.finditer(r"Invoke-DbTool\s+(\w+)\s+(\(?@\([^)]*\)|\$\w+)", source):
        line = source.count("\n", 0, match.start()) + 1
        argument = match.group(2)
        if argument.startswith("$"):
            words = arrays.get(argument[1:].lower(), [])
        else:
            words = literals(argument)
        calls.append((line, match.group(1), words))
    for match in re.finditer(r"Get-DbToolPath -Name (\w+)\)\s+([^\n]*)", source):
        line = source.count("\n", 0, match.start()) + 1
        words = [w for w in match.group(2).split() if not w.startswith("$")]
        calls.append((line, match.group(1), words))
    return calls


def help_text(bin_dir, tool, words, cache):
    key = (tool, tuple(words))
    if key not in cache:
        exe = pathlib.Path(bin_dir) / tool
        if not exe.is_file():
            sys.exit(f"check_ps1: {exe} is missing: build the tools first (cargo build --workspace --bins)")
        run = subprocess.run([str(exe), *words, "--help"], capture_output=True, text=True)
        cache[key] = run.stdout if run.returncode == 0 else None
    return cache[key]


def check(directory, bin_dir):
    parser = Parser(Language(tree_sitter_powershell.language()))
    problems = []
    files = sorted(pathlib.Path(directory).glob("*.ps1"))
    if not files:
        problems.append(f"{directory}: no .ps1 files")
    cache = {}
    calls_checked = 0
    for path in files:
        source_bytes = path.read_bytes()
        source = source_bytes.decode("utf-8")
        tree = parser.parse(source_bytes)
        for line, column, text in parse_errors(tree):
            problems.append(f"{path}:{line}:{column}: does not parse as PowerShell near {text!r}")
        if path.name == COMMON:
            continue
        if not re.search(r"\[CmdletBinding\(SupportsShouldProcess", source):
            problems.append(f"{path}:1: not an advanced script with [CmdletBinding(SupportsShouldProcess)]")
        if not re.search(r"^param\(", source, re.MULTILINE):
            problems.append(f"{path}:1: no param block")
        if re.search(r"\[string\]\s*\$Env\b", source) and "ValidatePattern" not in source:
            problems.append(f"{path}:1: -Env is not validated")
        if f". (Join-Path $PSScriptRoot '{COMMON}')" not in source:
            problems.append(f"{path}:1: does not dot-source {COMMON}")
        # A result of these tools carries the profile, password included (stdout is a pipe):
        # what a wrapper hands back to the user must be redacted (-Final).
        for number, text in enumerate(source.splitlines(), 1):
            if re.match(r"\s*Invoke-DbTool\s+(dbconnect|dbmigrate|dbseed)\b", text) and "-Final" not in text:
                problems.append(f"{path}:{number}: returns a result carrying the profile's password to the user: add -Final")
        for line, tool, words in invocations(source):
            calls_checked += 1
            secret = [w for w in words if re.search(r"passw", w, re.IGNORECASE)]
            if secret:
                problems.append(f"{path}:{line}: a password on a command line: {secret[0][:40]!r}")
            if tool not in TOOLS:
                problems.append(f"{path}:{line}: {tool} is not a dbtools binary")
                continue
            command = [w for w in words if not w.startswith("-")]
            flags = [w for w in words if w.startswith("--")]
            # The subcommand path: the leading words the tool accepts as subcommands.
            path_words = []
            for word in command:
                if help_text(bin_dir, tool, path_words + [word], cache) is None:
                    break
                path_words.append(word)
            if not path_words:
                problems.append(f"{path}:{line}: `{tool} {' '.join(command)}`: no such subcommand")
                continue
            text = help_text(bin_dir, tool, path_words, cache)
            for flag in flags:
                if not re.search(re.escape(flag) + r"\b", text):
                    problems.append(f"{path}:{line}: `{tool} {' '.join(path_words)}` has no flag {flag}")
    return files, calls_checked, problems


def main():
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--bin-dir", required=True)
    arguments.add_argument("--dir", default=str(pathlib.Path(__file__).resolve().parent.parent / "ops" / "aws"))
    options = arguments.parse_args()
    files, calls, problems = check(options.dir, options.bin_dir)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"check_ps1: {len(files)} files parse as PowerShell; {calls} dbtools command lines name real subcommands and flags")
    return 0


if __name__ == "__main__":
    sys.exit(main())
