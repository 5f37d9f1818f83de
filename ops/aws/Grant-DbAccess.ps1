<#
.SYNOPSIS
Admits this machine's current public address to an env's RDS instance (one rule per machine,
its stale rule removed): rdsprov access allow-current. -WhatIf shows the rules and whether this
machine is admitted (rdsprov access show) and changes nothing.

.EXAMPLE
./ops/aws/Grant-DbAccess.ps1 -Env test
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)]
    [ValidatePattern('(?-i)^[a-z0-9][a-z0-9_-]*$')]
    [string] $Env,
    [string] $Spec
)
. (Join-Path $PSScriptRoot 'DbTools.Common.ps1')

$target = @()
if ($Spec) {
    $target = @('--spec', $Spec)
}
if ($PSCmdlet.ShouldProcess("env $Env", "admit this machine's current address")) {
    Invoke-DbTool rdsprov (@('access', 'allow-current', $Env, '--json') + $target)
}
else {
    Invoke-DbTool rdsprov (@('access', 'show', $Env, '--json') + $target)
}
