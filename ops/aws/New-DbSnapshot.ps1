<#
.SYNOPSIS
Takes a manual RDS snapshot of an env's instance (a cluster snapshot on Aurora), e.g. before a
risky release: rdsprov snapshot.

.DESCRIPTION
The instance comes from -Spec (the AWS spec) or, without it, from dbtools.toml (an env whose
instance is on AWS, as `dbenv import` writes it). -WhatIf changes nothing.

.EXAMPLE
./ops/aws/New-DbSnapshot.ps1 -Env test -Name before-v2
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)]
    [ValidatePattern('(?-i)^[a-z0-9][a-z0-9_-]*$')]
    [string] $Env,
    [string] $Name,
    [string] $Spec
)
. (Join-Path $PSScriptRoot 'DbTools.Common.ps1')

$arguments = @('snapshot', '--env', $Env, '--json')
if ($Name) {
    $arguments += @('--name', $Name)
}
if ($Spec) {
    $arguments += @('--spec', $Spec)
}
if ($PSCmdlet.ShouldProcess("env $Env", 'take a manual snapshot')) {
    Invoke-DbTool rdsprov $arguments
}
