<#
.SYNOPSIS
Applies an env's seeds, as `make seed ENV=...` does (dbenv resolve ENV | dbseed apply).

.DESCRIPTION
-WhatIf shows each seed file's state (dbseed status) and changes nothing.

.EXAMPLE
./ops/aws/Invoke-DbSeed.ps1 -Env dev
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)]
    [ValidatePattern('(?-i)^[a-z0-9][a-z0-9_-]*$')]
    [string] $Env
)
. (Join-Path $PSScriptRoot 'DbTools.Common.ps1')

$dbProfile = Invoke-DbTool dbenv @('resolve', $Env, '--json')
if (-not $PSCmdlet.ShouldProcess("env $Env", 'apply seeds')) {
    Invoke-DbTool dbseed @('status', '--json') -InputJson $dbProfile -Final
    return
}
Invoke-DbTool dbseed @('apply', '--json') -InputJson $dbProfile -Final
