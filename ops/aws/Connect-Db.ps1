<#
.SYNOPSIS
Connects to an env: the witness (dbconnect check), -Doctor to walk the chain when it fails, or
-Psql for an interactive psql (the password in psql's environment only).

.EXAMPLE
./ops/aws/Connect-Db.ps1 -Env test -Doctor
#>
[CmdletBinding(SupportsShouldProcess, DefaultParameterSetName = 'Check')]
param(
    [Parameter(Mandatory)]
    [ValidatePattern('(?-i)^[a-z0-9][a-z0-9_-]*$')]
    [string] $Env,
    [Parameter(ParameterSetName = 'Psql')]
    [switch] $Psql,
    [Parameter(ParameterSetName = 'Doctor')]
    [switch] $Doctor
)
. (Join-Path $PSScriptRoot 'DbTools.Common.ps1')

if ($Psql) {
    if ($PSCmdlet.ShouldProcess("env $Env", 'open psql')) {
        & (Get-DbToolPath -Name dbconnect) psql --env $Env
        exit $LASTEXITCODE
    }
    return
}
if ($Doctor) {
    Invoke-DbTool dbconnect @('doctor', '--env', $Env, '--json') -Final
    return
}
Invoke-DbTool dbconnect @('check', '--env', $Env, '--json') -Final
