<#
.SYNOPSIS
Drops and recreates an env's database, then migrates and seeds it, as `make reset` does.

.DESCRIPTION
Destructive: PowerShell asks first (ConfirmImpact High; -Confirm:$false skips the question),
and the guard still wants the env name typed on confirm-level envs: -ConfirmEnv test. Locked
envs are refused here whatever is typed. -WhatIf says what would happen and changes nothing.

.EXAMPLE
./ops/aws/Reset-Db.ps1 -Env test -ConfirmEnv test
#>
[CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'High')]
param(
    [Parameter(Mandatory)]
    [ValidatePattern('(?-i)^[a-z0-9][a-z0-9_-]*$')]
    [string] $Env,
    # The env name typed again, for the guard (--confirm).
    [string] $ConfirmEnv
)
. (Join-Path $PSScriptRoot 'DbTools.Common.ps1')

if (-not $PSCmdlet.ShouldProcess("env $Env", 'drop and recreate the database, then migrate and seed it')) {
    return
}
$reset = @('reset', '--env', $Env, '--json')
if ($ConfirmEnv) {
    $reset += @('--confirm', $ConfirmEnv)
}
Invoke-DbTool rdsprov $reset | Out-Null
$dbProfile = Invoke-DbTool dbenv @('resolve', $Env, '--json')
$migrated = Invoke-DbTool dbmigrate @('up', '--json') -InputJson $dbProfile
$seeded = Invoke-DbTool dbseed @('apply', '--json') -InputJson $migrated
Invoke-DbTool dbconnect @('check', '--json') -InputJson $seeded -Final
