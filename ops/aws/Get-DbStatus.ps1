<#
.SYNOPSIS
Shows the instances (rdsprov status) and, with -Env, that env's migrations (dbmigrate status).

.EXAMPLE
./ops/aws/Get-DbStatus.ps1 -Env test
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [ValidatePattern('(?-i)^[a-z0-9][a-z0-9_-]*$')]
    [string] $Env,
    [string] $Spec
)
. (Join-Path $PSScriptRoot 'DbTools.Common.ps1')

if ($Env) {
    Invoke-DbTool dbmigrate @('status', '--env', $Env, '--json') -Final
    return
}
if ($Spec) {
    Invoke-DbTool rdsprov @('status', '--spec', $Spec, '--json')
}
else {
    Invoke-DbTool rdsprov @('status', '--json')
}
