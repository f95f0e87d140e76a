<#
.SYNOPSIS
    Installs (or removes) the Vigil agent as a Windows service. For MSP deployment tools
    (RMM scripts, Intune, GPO startup scripts): run as SYSTEM or an administrator.

.DESCRIPTION
    Copies vigil-agent.exe to "$env:ProgramFiles\Vigil", then runs
    'vigil-agent install --collector URL --token TOKEN', which enrolls the machine, writes
    %ProgramData%\Vigil\agent\agent.toml and creates the 'vigil-agent' service (automatic
    start, restarted on failure). Running it again on an installed machine only replaces the
    program and restarts the service. Exit code 0 on success, non-zero with the agent's
    message otherwise.

.EXAMPLE
    .\install-agent.ps1 -Collector https://msp.example:7443 -Token vgl1-... -Source .\vigil-agent.exe

.EXAMPLE
    .\install-agent.ps1 -Uninstall -KeepSpool
#>
[CmdletBinding(DefaultParameterSetName = 'Install')]
param(
    [Parameter(Mandatory, ParameterSetName = 'Install')]
    [string] $Collector,
    [Parameter(Mandatory, ParameterSetName = 'Install')]
    [string] $Token,
    [Parameter(ParameterSetName = 'Install')]
    [string] $Source = (Join-Path $PSScriptRoot 'vigil-agent.exe'),
    [Parameter(ParameterSetName = 'Install')]
    [string] $HostName,
    [Parameter(Mandatory, ParameterSetName = 'Uninstall')]
    [switch] $Uninstall,
    [Parameter(ParameterSetName = 'Uninstall')]
    [switch] $KeepSpool
)

$ErrorActionPreference = 'Stop'
$folder = Join-Path $env:ProgramFiles 'Vigil'
$agent = Join-Path $folder 'vigil-agent.exe'
$config = Join-Path $env:ProgramData 'Vigil\agent\agent.toml'

function Invoke-Agent([string[]] $Arguments) {
    & $agent @Arguments
    if ($LASTEXITCODE -ne 0) {
        throw "vigil-agent $($Arguments[0]) failed with exit code $LASTEXITCODE"
    }
}

if ($Uninstall) {
    if (-not (Test-Path $agent)) { Write-Output 'vigil-agent is not installed'; exit 0 }
    $arguments = @('uninstall')
    if ($KeepSpool) { $arguments += '--keep-spool' }
    Invoke-Agent $arguments
    Remove-Item -Recurse -Force $folder
    exit 0
}

if (-not (Test-Path $Source)) { throw "the agent program '$Source' does not exist; pass -Source" }
$service = Get-Service -Name 'vigil-agent' -ErrorAction SilentlyContinue
if ($service -and (Test-Path $config)) {
    # Already enrolled and installed: an upgrade.
    Stop-Service -Name 'vigil-agent'
    Copy-Item -Force $Source $agent
    Start-Service -Name 'vigil-agent'
    Write-Output "vigil-agent upgraded and restarted"
    exit 0
}

New-Item -ItemType Directory -Force -Path $folder | Out-Null
Copy-Item -Force $Source $agent
# The token goes through the environment, not the command line other processes can read.
$env:VIGIL_TOKEN = $Token
try {
    $arguments = @('install', '--collector', $Collector)
    if ($HostName) { $arguments += @('--hostname', $HostName) }
    Invoke-Agent $arguments
} finally {
    Remove-Item Env:\VIGIL_TOKEN -ErrorAction SilentlyContinue
}
