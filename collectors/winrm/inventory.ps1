# certmon inventory: the certificates of the requested stores, how each private key is held,
# and the TLS certificate every SQL Server instance is configured with. One compact JSON line.
# The collector prepends `$Stores = @('LocalMachine\My', ...)`, strips comments and indentation,
# and runs the result with powershell.exe -EncodedCommand (it must stay under cmd.exe's 8191
# characters). Dates and thumbprints are not reported: certmon parses the DER itself.
# Written for Windows PowerShell 5.1 (.NET Framework), the default on Windows Server.
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
trap { [Console]::Error.WriteLine('certmon-inventory: ' + $_.Exception.Message); exit 1 }
function Get-KeyKind($Cert) {
    # Service Fabric (and anything using CryptoAPI) cannot use a key held by a CNG provider.
    # .NET Framework returns RSACryptoServiceProvider for CAPI keys and RSACng/ECDsaCng for CNG keys.
    if (-not $Cert.HasPrivateKey) { return @('', '') }
    $key = $null
    try {
        $key = [Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($Cert)
        if ($null -eq $key) {
            $key = [Security.Cryptography.X509Certificates.ECDsaCertificateExtensions]::GetECDsaPrivateKey($Cert)
        }
        if ($key -is [Security.Cryptography.ICspAsymmetricAlgorithm]) {
            return @('capi', $key.CspKeyContainerInfo.ProviderName)
        }
        if ($key -is [Security.Cryptography.RSACng] -or $key -is [Security.Cryptography.ECDsaCng]) {
            return @('cng', $key.Key.Provider.Provider)
        }
        return @('unknown', '')
    } catch {
        # Typically "Keyset does not exist": the account may not read the key.
        return @('unknown', $_.Exception.Message)
    } finally {
        if ($null -ne $key) { $key.Dispose() }
    }
}
$result = @{ v = 1; stores = @(); sql = @(); n = 0 }
foreach ($name in $Stores) {
    $entry = @{ s = $name; c = @() }
    $store = $null
    try {
        $location, $storeName = $name -split '\\', 2
        $store = New-Object Security.Cryptography.X509Certificates.X509Store($storeName, $location)
        $store.Open('ReadOnly, OpenExistingOnly')
        $entry.c = @(foreach ($cert in $store.Certificates) {
            $kind = Get-KeyKind $cert
            @{ d = [Convert]::ToBase64String($cert.RawData); h = $cert.HasPrivateKey; k = $kind[0]; p = $kind[1] }
        })
    } catch {
        $entry.e = $_.Exception.Message
    } finally {
        if ($null -ne $store) { $store.Close() }
    }
    $result.stores += $entry
    $result.n += $entry.c.Count
}
$sqlRoot = 'HKLM:\SOFTWARE\Microsoft\Microsoft SQL Server'
$instances = Get-Item -LiteralPath "$sqlRoot\Instance Names\SQL" -ErrorAction SilentlyContinue
if ($null -ne $instances) {
    foreach ($instance in $instances.GetValueNames()) {
        $id = $instances.GetValue($instance)
        $net = Get-ItemProperty -LiteralPath "$sqlRoot\$id\MSSQLServer\SuperSocketNetLib" -ErrorAction SilentlyContinue
        $result.sql += @{ i = $instance; t = [string]$net.Certificate }
    }
}
$json = ConvertTo-Json $result -Compress -Depth 6
# Keep stdout ASCII whatever the console code page: escape anything else as \uXXXX.
$json = [regex]::Replace($json, '[^\x20-\x7e]', { param($m) '\u{0:x4}' -f [int][char]$m.Value })
[Console]::Out.WriteLine($json)
exit 0
