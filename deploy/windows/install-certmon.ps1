<#
.SYNOPSIS
  Installs certmon as a Windows service for one environment (WinSW wrapper).

.DESCRIPTION
  Run elevated on the management VM, once per environment. Expects:
    - Python 3.11+ (64-bit, all users) and certmon installed in C:\certmon\.venv
      (see deploy\windows\README.md);
    - WinSW-x64.exe (v3) next to this script, or -WinSW pointing at it;
    - the environment's configuration at C:\ProgramData\certmon\<Environment>\certmon.yaml.
  It creates the data, logs and secrets folders with least-privilege ACLs, writes the WinSW
  definition from certmon-service.xml, installs and starts the service, and opens the
  exporter port to the Prometheus server only. The status page and remediation API stay on
  loopback: no firewall rule for them.

.EXAMPLE
  .\install-certmon.ps1 -Environment contoso-prod -ExporterPort 9877 `
      -PrometheusAddress 10.0.5.20 -ServiceAccount 'CONTOSO\svc-certmon$'
#>
[CmdletBinding(SupportsShouldProcess = $true)]
param(
    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$')]
    [string] $Environment,

    [ValidateRange(1, 65535)]
    [int] $ExporterPort = 9877,

    # The Prometheus server(s) allowed to scrape, as addresses or CIDR ranges.
    [Parameter(Mandatory = $true)]
    [string[]] $PrometheusAddress,

    # A gMSA (ending in $) or a dedicated domain account; never LocalSystem.
    [Parameter(Mandatory = $true)]
    [string] $ServiceAccount,

    [string] $InstallRoot = 'C:\certmon',
    [string] $WinSW = (Join-Path $PSScriptRoot 'WinSW-x64.exe')
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$python = Join-Path $InstallRoot '.venv\Scripts\python.exe'
$envHome = Join-Path $env:ProgramData "certmon\$Environment"
$config = Join-Path $envHome 'certmon.yaml'
$serviceId = "certmon-$Environment"
$services = Join-Path $InstallRoot 'services'

foreach ($required in @($python, $WinSW, $config)) {
    if (-not (Test-Path -LiteralPath $required)) { throw "missing: $required" }
}

# Folders: configuration read-only for the service; data and logs writable; secrets readable
# by the service account and administrators only (no inheritance from ProgramData).
$folders = [ordered]@{
    $envHome                          = 'ReadAndExecute'
    (Join-Path $envHome 'secrets')    = 'Read'
    (Join-Path $envHome 'data')       = 'Modify'
    (Join-Path $envHome 'logs')       = 'Modify'
}
foreach ($folder in $folders.Keys) {
    New-Item -ItemType Directory -Force -Path $folder | Out-Null
    $right = @{ 'ReadAndExecute' = 'RX'; 'Read' = 'R'; 'Modify' = 'M' }[$folders[$folder]]
    $grant = "${ServiceAccount}:(OI)(CI)$right"
    if ($PSCmdlet.ShouldProcess($folder, "restrict ACL, grant $grant")) {
        & icacls.exe $folder /inheritance:r /grant:r 'SYSTEM:(OI)(CI)F' 'BUILTIN\Administrators:(OI)(CI)F' $grant | Out-Null
        if ($LASTEXITCODE -ne 0) { throw "icacls failed on $folder" }
    }
}

# Validate the configuration before installing (paths, secrets, web configs, the API's listener).
& $python -m daemon --config $config check-config
if ($LASTEXITCODE -ne 0) { throw "certmon check-config failed for $config; fix it before installing" }

# The WinSW definition: the template with this environment and account filled in.
New-Item -ItemType Directory -Force -Path $services | Out-Null
$wrapper = Join-Path $services "$serviceId.exe"
$definition = Join-Path $services "$serviceId.xml"
Copy-Item -LiteralPath $WinSW -Destination $wrapper -Force
$xml = Get-Content -Raw -LiteralPath (Join-Path $PSScriptRoot 'certmon-service.xml')
$xml = $xml.Replace('C:\certmon\.venv', (Join-Path $InstallRoot '.venv'))
$xml = $xml.Replace('CONTOSO\svc-certmon$', [System.Security.SecurityElement]::Escape($ServiceAccount))
$xml = $xml.Replace('ENVIRONMENT', $Environment)
Set-Content -LiteralPath $definition -Value $xml -Encoding UTF8

if ($PSCmdlet.ShouldProcess($serviceId, 'install and start the service')) {
    & $wrapper install
    if ($LASTEXITCODE -ne 0) { throw "WinSW install failed ($LASTEXITCODE)" }
    & $wrapper start
    if ($LASTEXITCODE -ne 0) { throw "WinSW start failed ($LASTEXITCODE); see $envHome\logs" }
}

# Only Prometheus may reach the exporter; the API port is not opened (it listens on loopback).
$rule = "certmon $Environment exporter"
if ($PSCmdlet.ShouldProcess($rule, "allow TCP $ExporterPort from $($PrometheusAddress -join ', ')")) {
    Get-NetFirewallRule -DisplayName $rule -ErrorAction SilentlyContinue | Remove-NetFirewallRule
    New-NetFirewallRule -DisplayName $rule -Direction Inbound -Action Allow -Protocol TCP `
        -LocalPort $ExporterPort -RemoteAddress $PrometheusAddress -Profile Domain | Out-Null
}

Write-Host "certmon $Environment installed: metrics on port $ExporterPort, status page on http://127.0.0.1:$($ExporterPort + 1)/ (unless api.port says otherwise)"
