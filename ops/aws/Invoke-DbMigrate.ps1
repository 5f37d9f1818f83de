<#
.SYNOPSIS
Applies pending migrations to an env, as `make migrate ENV=...` does.

.DESCRIPTION
dbenv resolve ENV | dbmigrate status | rdsprov snapshot --before-migrate | dbmigrate up:
on AWS envs other than dev (snapshot_before_migrate) a manual RDS snapshot is taken first when
migrations are pending; its id is in the result and the audit log. -WhatIf shows what would be
applied (dbmigrate up --dry-run) and changes nothing.

.EXAMPLE
./ops/aws/Invoke-DbMigrate.ps1 -Env test
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)]
    [ValidatePattern('(?-i)^[a-z0-9][a-z0-9_-]*$')]
    [string] $Env
)
. (Join-Path $PSScriptRoot 'DbTools.Common.ps1')

$dbProfile = Invoke-DbTool dbenv @('resolve', $Env, '--json')
if (-not $PSCmdlet.ShouldProcess("env $Env", 'apply pending migrations (a snapshot first where configured)')) {
    Invoke-DbTool dbmigrate @('up', '--dry-run', '--json') -InputJson $dbProfile -Final
    return
}
$status = Invoke-DbTool dbmigrate @('status', '--json') -InputJson $dbProfile
$snapshotted = Invoke-DbTool rdsprov @('snapshot', '--before-migrate', '--json') -InputJson $status
Invoke-DbTool dbmigrate @('up', '--json') -InputJson $snapshotted -Final
