# certmon inventory: the certificates of the requested stores, how each private key is held, who may
# read it, and the TLS certificate every SQL Server instance is configured with. One compact JSON line.
# The collector prepends `$Stores = @('LocalMachine\My', ...)`, strips comments, indentation and the
# blanks PowerShell does not need, and runs the result with powershell.exe -EncodedCommand (it must stay
# under cmd.exe's 8191 characters: names are short on purpose). Dates and thumbprints are not reported:
# certmon parses the DER itself. Written for Windows PowerShell 5.1 (.NET Framework), the default on
# Windows Server.
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
trap { [Console]::Error.WriteLine('certmon-inventory: ' + $_.Exception.Message); exit 1 }
# Service Fabric (and anything using CryptoAPI) cannot use a key held by a CNG provider. The kind is read
# from the certificate's CERT_KEY_PROV_INFO_PROP_ID (2) property, a CRYPT_KEY_PROV_INFO: its first field
# pwszContainerName names the key container, its second pwszProvName the provider, its third dwProvType
# is 0 for a CNG key storage provider (Win32 docs).
# Not from the .NET wrapper type: .NET Framework's GetRSAPrivateKey() opens CAPI keys through CNG
# (CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG) and returns RSACng for them. Reading the property does not
# open the key, so a key the account may not use is still classified.
$X = $null
$W = ''
try {
    $X = Add-Type -PassThru -Namespace Certmon -Name Crypt32 -MemberDefinition '[DllImport("crypt32.dll")]public static extern bool CertGetCertificateContextProperty(IntPtr c,int p,IntPtr b,ref int n);'
} catch {
    $W = 'Add-Type: ' + $_.Exception.Message
}
$M = [Runtime.InteropServices.Marshal]
# Short names keep the encoded command under cmd.exe's limit: $C the certificate, $B the CRYPT_KEY_PROV_INFO
# buffer, $Z its size, $P the pass, $T the size of a pointer.
function Get-KeyInfo($C) {
    # (provider type, provider name, container); type -1: no private key, or the property could not be read (name = why).
    if (!$C.HasPrivateKey) { return -1, '' }
    if (!$X) { return -1, $W }
    # Pass 0 asks the size (null buffer), pass 1 reads; FreeHGlobal(IntPtr.Zero) does nothing (.NET docs).
    $Z = 0
    $B = [IntPtr]::Zero
    try {
        foreach ($P in 0, 1) {
            if (!$X::CertGetCertificateContextProperty($C.Handle, 2, $B, [ref]$Z)) { return -1, 'no CERT_KEY_PROV_INFO property' }
            if (!$P) { $B = $M::AllocHGlobal($Z) }
        }
        $T = [IntPtr]::Size
        return $M::ReadInt32($B, 2*$T), $M::PtrToStringUni($M::ReadIntPtr($B, $T)), $M::PtrToStringUni($M::ReadIntPtr($B, 0))
    } finally {
        $M::FreeHGlobal($B)
    }
}
# Who may read a private key: the access rules of its key file, as [SID, account name, rights, type
# (0 allow, 1 deny)]; certmon decides which rules grant reading. A CAPI machine key is the file
# CspKeyContainerInfo.UniqueKeyContainerName in Crypto\RSA\MachineKeys, a CNG machine key the file
# CngKey.UniqueName in Crypto\Keys (both under %ProgramData%\Microsoft). Every identity named is noted in
# $G, whose local groups are listed at the end.
function Get-KeyAcl($C, $K) {
    try {
        $f = "$env:ProgramData\Microsoft\Crypto\" + $(if ($K[0]) { 'RSA\MachineKeys\' + $C.PrivateKey.CspKeyContainerInfo.UniqueKeyContainerName } else { 'Keys\' + [Security.Cryptography.CngKey]::Open($K[2], [Security.Cryptography.CngProvider]$K[1], 'MachineKey').UniqueName })
        @{ f = $f; a = @(foreach ($r in [IO.File]::GetAccessControl($f).GetAccessRules(1, 1, [Security.Principal.SecurityIdentifier])) { $i = $r.IdentityReference; $G[$i.Value] = 1; $n = ''; try { $n = $i.Translate([Security.Principal.NTAccount]).Value } catch {}; , @($i.Value, $n, [int]$r.FileSystemRights, [int]$r.AccessControlType) }) }
    } catch { @{ e = $_.Exception.Message } }
}
$G = @{}
$R = @{ v = 2; stores = @(); sql = @(); n = 0; g = @{} }
# $A a store's name, $Y a certificate, $J its key information.
foreach ($A in $Stores) {
    $E = @{ s = $A; c = @() }
    $S = $null
    try {
        $L, $N = $A -split '\\', 2
        $S = New-Object Security.Cryptography.X509Certificates.X509Store($N, $L)
        $S.Open('ReadOnly, OpenExistingOnly')
        $E.c = @(foreach ($Y in $S.Certificates) {
            $J = Get-KeyInfo $Y
            $o = @{ d = [Convert]::ToBase64String($Y.RawData); h = $Y.HasPrivateKey; t = $J[0]; p = $J[1] }
            if ($J[0] -ge 0) { $o.k = Get-KeyAcl $Y $J }
            $o
        })
    } catch {
        $E.e = $_.Exception.Message
    } finally {
        if ($S) { $S.Close() }
    }
    $R.stores += $E
    $R.n += $E.c.Count
}
$Q = 'HKLM:\SOFTWARE\Microsoft\Microsoft SQL Server'
$I = Get-Item -LiteralPath "$Q\Instance Names\SQL" -ea 0
if ($I) {
    foreach ($A in $I.GetValueNames()) {
        $net = Get-ItemProperty -LiteralPath "$Q\$($I.GetValue($A))\MSSQLServer\SuperSocketNetLib" -ea 0
        $R.sql += @{ i = $A; t = [string]$net.Certificate }
    }
}
# The members of each local group a key's access rules name, as [SID, name, ObjectClass (User or Group)], so
# certmon can tell who reads a key through a group. Get-LocalGroupMember -SID fails for an identity that is not
# a local group (an account, a domain or well-known group) and for a group with a member it cannot resolve;
# such identities are left out and certmon says "unknown" for accounts that could read through them.
foreach ($s in $G.Keys) { try { $R.g[$s] = @(Get-LocalGroupMember -SID $s | % { , @($_.SID.Value, $_.Name, $_.ObjectClass) }) } catch {} }
# Keep stdout ASCII whatever the console code page: escape anything else as \uXXXX.
[Console]::Out.WriteLine([regex]::Replace((ConvertTo-Json $R -Compress -Depth 9), '[^\x20-\x7e]', { param($m) '\u{0:x4}' -f [int][char]$m.Value }))
exit 0
