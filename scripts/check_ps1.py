#!/usr/bin/env python3
"""Checks the PowerShell wrappers in ops/aws without PowerShell (which cannot be installed on
every build machine): each file is parsed with a real PowerShell grammar (tree-sitter-powershell)
and must parse without an error node; a file with non-ASCII text carries a UTF-8 byte-order
mark; a property of a tool's parsed JSON that an error object lacks is read only after checking
it exists (Set-StrictMode); each wrapper script is an advanced script with
[CmdletBinding(SupportsShouldProcess ...)] and a param block, validates its -Env case-sensitively,
dot-sources the common helper, and puts no password on a command line; and every dbtools
command line it builds, flags added from variables included, names a real subcommand and real
flags (exactly) — asked of the built binaries' --help.

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
    """(line, tool, argument literals) of each command line a wrapper runs: the literals of the
    argument expression, and those of every array variable it adds in (`@('x') + $target`,
    where `$target = @('--spec', $Spec)`), so a flag built in a variable is checked too."""
    arrays = {}
    for match in re.finditer(r"\$(\w+)\s*\+?=\s*(@\([^)]*\)|'[^']*')", source):
        arrays.setdefault(match.group(1).lower(), []).extend(literals(match.group(2)))
    calls = []
    for match in re.finditer(r"Invoke-DbTool\s+(\w+)\s+([^\n]*)", source):
        line = source.count("\n", 0, match.start()) + 1
        expression = re.split(r"\s-(?:InputJson|Final)\b", match.group(2))[0]
        words = literals(expression)
        for variable in re.findall(r"\$(\w+)", expression):
            words += arrays.get(variable.lower(), [])
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


def flags_of(help_text):
    """The long flags a --help names, exactly (`--to` is not `--to-time`)."""
    return set(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", help_text))


# What every dbtools error object carries: any other property of a tool's JSON may be absent,
# and under Set-StrictMode reading an absent property throws before the script can exit.
ERROR_FIELDS = {"kind", "tool", "code", "error", "message", "psobject"}


def unguarded_reads(source):
    """(line, variable, property) of each read of a property an error object lacks, on a
    variable that holds a tool's parsed JSON, without a `PSObject.Properties.Name -contains`
    check for that property in the file."""
    found = []
    for match in re.finditer(r"\$(\w+)\s*=\s*[^\n]*ConvertFrom-Json", source):
        variable = match.group(1)
        for read in re.finditer(r"\$" + variable + r"\.(\w+)", source):
            name = read.group(1)
            guard = rf"\${variable}\.PSObject\.Properties\.Name\s+-contains\s+'{name}'"
            if name.lower() not in ERROR_FIELDS and not re.search(guard, source, re.IGNORECASE):
                found.append((source.count("\n", 0, read.start()) + 1, variable, name))
    return found


def env_validation(source):
    """None when the -Env parameter is validated case-sensitively, else what is wrong.
    PowerShell's ValidatePattern ignores case unless the pattern turns that off with (?-i)."""
    lines = source.splitlines()
    at = next((i for i, l in enumerate(lines) if re.search(r"\[string\]\s*\$Env\b", l)), None)
    if at is None:
        return None
    # The parameter's attributes: those before it on its own line, and the attribute lines
    # right above it.
    start = at
    while start > 0 and re.match(r"\s*\[.*\]\s*$", lines[start - 1]):
        start -= 1
    attributes = "\n".join(lines[start:at] + [lines[at].split("[string]")[0]])
    pattern = re.search(r"\[ValidatePattern\('([^']*)'\)\]", attributes)
    if re.search(r"\[ValidateScript\(\{[^}]*-cmatch", attributes):
        return None
    if not pattern:
        return "-Env is not validated"
    if not pattern.group(1).startswith("(?-i)"):
        return "-Env's ValidatePattern ignores case (PowerShell's default): start the pattern with (?-i), or -Env TEST passes"
    return None


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
        has_bom = source_bytes.startswith(b"\xef\xbb\xbf")
        source = source_bytes.decode("utf-8-sig")
        tree = parser.parse(source_bytes)
        for line, column, text in parse_errors(tree):
            problems.append(f"{path}:{line}:{column}: does not parse as PowerShell near {text!r}")
        # Windows PowerShell 5.1 reads a file without a byte-order mark in the ANSI code page.
        if not has_bom:
            for number, text in enumerate(source.splitlines(), 1):
                if any(ord(c) > 127 for c in text):
                    problems.append(f"{path}:{number}: non-ASCII text in a file without a UTF-8 byte-order mark (Windows PowerShell 5.1 reads it as ANSI)")
                    break
        for line, variable, name in unguarded_reads(source):
            problems.append(f"{path}:{line}: ${variable}.{name} read without checking it exists: an error object has no {name}, and Set-StrictMode throws")
        if path.name == COMMON:
            continue
        if not re.search(r"\[CmdletBinding\(SupportsShouldProcess", source):
            problems.append(f"{path}:1: not an advanced script with [CmdletBinding(SupportsShouldProcess)]")
        if not re.search(r"^param\(", source, re.MULTILINE):
            problems.append(f"{path}:1: no param block")
        wrong = env_validation(source)
        if wrong:
            problems.append(f"{path}:1: {wrong}")
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
            known = flags_of(help_text(bin_dir, tool, path_words, cache))
            for flag in flags:
                if flag.split("=", 1)[0] not in known:
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
