<#
.SYNOPSIS
Points this PowerShell session's libpq variables at an env (PGHOST, PGPORT, PGDATABASE, PGUSER,
PGSSLMODE, PGSSLROOTCERT, PGPASSFILE), so psql, pg_dump and the app's own tools reach it the
way dbtools does: `dbenv export ENV --format powershell`, run here. The password goes to the
env's private pgpass file in the state dir, never into a variable or onto the screen.

.EXAMPLE
./ops/aws/Set-DbEnv.ps1 -Env test; psql -c 'select current_database()'
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)]
    [ValidatePattern('(?-i)^[a-z0-9][a-z0-9_-]*$')]
    [string] $Env
)
. (Join-Path $PSScriptRoot 'DbTools.Common.ps1')

if ($PSCmdlet.ShouldProcess("env $Env", 'set the PG* variables of this session')) {
    # A script runs in the session's own process: the variables it sets stay after it ends.
    $assignments = Invoke-DbTool dbenv @('export', $Env, '--format', 'powershell')
    Invoke-Expression $assignments
    Write-Verbose "PG* variables now point at env $Env ($env:PGHOST`:$env:PGPORT/$env:PGDATABASE)"
}
