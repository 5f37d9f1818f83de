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
    # $IsWindows exists from PowerShell 6 on; under StrictMode 5.1 reading it would throw.
    $onWindows = ($env:OS -eq 'Windows_NT') -or ((Test-Path Variable:IsWindows) -and $IsWindows)
    $file = if ($onWindows) { "$Name.exe" } else { $Name }
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
    # Runs one tool; -InputJson goes to its stdin. Returns its stdout (JSON: the tool's stdout
    # is a pipe here). -Final marks what goes back to the user: profiles carry no password
    # (dbtools.profile/v2), and the final answer is still passed through Hide-DbPassword, so a
    # password field from any older binary never reaches the console. A non-zero
    # exit ends the calling script with the same code, after showing what the tool printed
    # (doctor's report, a status) -- its one-line message is already on stderr.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory, Position = 0)]
        [string] $Name,
        [Parameter(Position = 1)]
        [string[]] $Arguments = @(),
        [string] $InputJson,
        [switch] $Final
    )
    $exe = Get-DbToolPath -Name $Name
    # Progress lines on stderr are not errors: under 'Stop' Windows PowerShell 5.1 (ISE,
    # remoting, redirected stderr) would abort on the first one, and PowerShell 7.3+ with
    # $PSNativeCommandUseErrorActionPreference would throw before the exit code is read.
    $ErrorActionPreference = 'Continue'
    $PSNativeCommandUseErrorActionPreference = $false
    if ($PSBoundParameters.ContainsKey('InputJson')) {
        $output = $InputJson | & $exe @Arguments
    }
    else {
        $output = & $exe @Arguments
    }
    $code = $LASTEXITCODE
    $text = ($output -join "`n")
    if ($Final -or $code -ne 0) {
        $text = Hide-DbPassword -Json $text
    }
    if ($code -ne 0) {
        if ($text) {
            Write-Output $text
        }
        exit $code
    }
    return $text
}

function Hide-DbPassword {
    # The JSON with any profile's password replaced (none since dbtools.profile/v2: a second line
    # of defence).
    [CmdletBinding()]
    param(
        [string] $Json
    )
    if (-not $Json -or -not $Json.TrimStart().StartsWith('{')) {
        return $Json
    }
    $answer = $Json | ConvertFrom-Json
    # Under StrictMode reading a property an object lacks throws (an error object has no
    # profile): look before reading.
    $holders = @($answer)
    if ($answer.PSObject.Properties.Name -contains 'profile') {
        $holders += $answer.profile
    }
    foreach ($holder in $holders) {
        if ($holder -and ($holder.PSObject.Properties.Name -contains 'conn') -and
            $holder.conn -and ($holder.conn.PSObject.Properties.Name -contains 'password') -and
            $holder.conn.password) {
            $holder.conn.password = '********'
        }
    }
    return ($answer | ConvertTo-Json -Depth 20 -Compress)
}
