<#
.SYNOPSIS
Provisions the instances: -WhatIf is `rdsprov plan` (what would change, and the cost estimate),
otherwise `rdsprov apply`, as `make plan` / `make apply` do.

.DESCRIPTION
With -Spec (default ops/aws/rds.toml) the AWS instances of the spec, honouring AWS_PROFILE,
AWS_REGION and AWS_ENDPOINT_URL; with -Local the local instances of dbtools.toml.

.EXAMPLE
./ops/aws/Invoke-DbProvision.ps1 -WhatIf
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [string] $Spec = (Join-Path $PSScriptRoot 'rds.toml'),
    [switch] $Local
)
. (Join-Path $PSScriptRoot 'DbTools.Common.ps1')

if ($Local) {
    if ($PSCmdlet.ShouldProcess('local instances', 'create or converge')) {
        Invoke-DbTool rdsprov @('apply', '--json')
    }
    else {
        Invoke-DbTool rdsprov @('status', '--json')
    }
    return
}
if ($PSCmdlet.ShouldProcess($Spec, 'create or converge the AWS instances')) {
    Invoke-DbTool rdsprov @('apply', '--spec', $Spec, '--json')
}
else {
    Invoke-DbTool rdsprov @('plan', '--spec', $Spec, '--json')
}
