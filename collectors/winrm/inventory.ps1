# certmon inventory: the certificates of the requested stores, how each private key is held,
# and the TLS certificate every SQL Server instance is configured with. One compact JSON line.
# The collector prepends `$Stores = @('LocalMachine\My', ...)`, strips comments and indentation,
# and runs the result with powershell.exe -EncodedCommand (it must stay under cmd.exe's 8191
# characters). Dates and thumbprints are not reported: certmon parses the DER itself.
# Written for Windows PowerShell 5.1 (.NET Framework), the default on Windows Server.
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
trap { [Console]::Error.WriteLine('certmon-inventory: ' + $_.Exception.Message); exit 1 }
# Service Fabric (and anything using CryptoAPI) cannot use a key held by a CNG provider. The kind is read
# from the certificate's CERT_KEY_PROV_INFO_PROP_ID (2) property, a CRYPT_KEY_PROV_INFO: its second field
# pwszProvName names the provider, its third dwProvType is 0 for a CNG key storage provider (Win32 docs).
# Not from the .NET wrapper type: .NET Framework's GetRSAPrivateKey() opens CAPI keys through CNG
# (CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG) and returns RSACng for them. Reading the property does not
# open the key, so a key the account may not use is still classified.
$Crypt = $null
$NoInfo = ''
try {
    $Crypt = Add-Type -PassThru -Namespace Certmon -Name Crypt32 -MemberDefinition '[DllImport("crypt32.dll")]public static extern bool CertGetCertificateContextProperty(IntPtr c,int p,IntPtr b,ref int n);'
} catch {
    $NoInfo = 'Add-Type: ' + $_.Exception.Message
}
$M = [Runtime.InteropServices.Marshal]
function Get-KeyInfo($Cert) {
    # @(provider type, provider name); type -1: no private key, or the property could not be read (name = why).
    if (-not $Cert.HasPrivateKey) { return @(-1, '') }
    if ($null -eq $Crypt) { return @(-1, $NoInfo) }
    $size = 0
    if (-not $Crypt::CertGetCertificateContextProperty($Cert.Handle, 2, [IntPtr]::Zero, [ref]$size)) {
        return @(-1, 'no CERT_KEY_PROV_INFO property')
    }
    $info = $M::AllocHGlobal($size)
    try {
        if (-not $Crypt::CertGetCertificateContextProperty($Cert.Handle, 2, $info, [ref]$size)) {
            return @(-1, 'no CERT_KEY_PROV_INFO property')
        }
        $ptr = [IntPtr]::Size
        return @($M::ReadInt32($info, 2 * $ptr), $M::PtrToStringUni($M::ReadIntPtr($info, $ptr)))
    } finally {
        $M::FreeHGlobal($info)
    }
}
$result = @{ v = 2; stores = @(); sql = @(); n = 0 }
foreach ($name in $Stores) {
    $entry = @{ s = $name; c = @() }
    $store = $null
    try {
        $location, $storeName = $name -split '\\', 2
        $store = New-Object Security.Cryptography.X509Certificates.X509Store($storeName, $location)
        $store.Open('ReadOnly, OpenExistingOnly')
        $entry.c = @(foreach ($cert in $store.Certificates) {
            $key = Get-KeyInfo $cert
            @{ d = [Convert]::ToBase64String($cert.RawData); h = $cert.HasPrivateKey; t = $key[0]; p = $key[1] }
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
