# Shared by the ops/aws wrappers (dot-sourced, never run alone): UTF-8 both ways through the
# pipe, where the dbtools binaries are, and one way to run a tool so that its JSON passes on
# exactly as in the shell pipelines (on stdin, never on a command line) and its exit code stops
# the flow with the tool's own one-line message already on stderr. All logic stays in the tools.

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

# Windows PowerShell 5.1 pipes text to native programs in $OutputEncoding (ASCII by default)
# and reads their output in the console's code page: both UTF-8, without a byte-order mark, so
# non-ASCII names survive the round trip.
$utf8 = [System.Text.UTF8Encoding]::new($false)
$OutputEncoding = $utf8
[Console]::OutputEncoding = $utf8
[Console]::InputEncoding = $utf8

function Get-DbToolPath {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)]
        [ValidateSet('dbenv', 'dbconnect', 'dbmigrate', 'dbseed', 'dbguard', 'rdsprov')]
        [string] $Name
    )
    $file = if ($IsWindows -or $env:OS -eq 'Windows_NT') { "$Name.exe" } else { $Name }
    $candidates = @()
    if ($env:DBTOOLS_BIN_DIR) {
        $candidates += Join-Path $env:DBTOOLS_BIN_DIR $file
    }
    $repo = Split-Path (Split-Path $PSScriptRoot -Parent) -Parent
    $candidates += Join-Path (Join-Path (Join-Path $repo 'target') 'release') $file
    $candidates += Join-Path (Join-Path (Join-Path $repo 'target') 'debug') $file
    foreach ($candidate in $candidates) {
        if (Test-Path -LiteralPath $candidate -PathType Leaf) {
            return $candidate
        }
    }
    $onPath = Get-Command $file -CommandType Application -ErrorAction SilentlyContinue
    if ($onPath) {
        return $onPath.Source
    }
    throw "dbtools: $Name not found: build it (cargo build --release) or set DBTOOLS_BIN_DIR"
}

function Invoke-DbTool {
    # Runs one tool; -InputJson goes to its stdin. Returns its stdout (JSON when not a
    # terminal). A non-zero exit ends the calling script with the same code.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory, Position = 0)]
        [string] $Name,
        [Parameter(Position = 1)]
        [string[]] $Arguments = @(),
        [string] $InputJson
    )
    $exe = Get-DbToolPath -Name $Name
    if ($PSBoundParameters.ContainsKey('InputJson')) {
        $output = $InputJson | & $exe @Arguments
    }
    else {
        $output = & $exe @Arguments
    }
    $code = $LASTEXITCODE
    if ($code -ne 0) {
        # The tool has said what happened and what to do, on stderr; keep its exit code.
        exit $code
    }
    return ($output -join "`n")
}
