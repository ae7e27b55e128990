"""private-key-acl-missing: the service accounts a role's certificate serves must be able to read its key.

private-key-acl-unverified: whether they can is unknown (they could only read it through a group certmon
cannot expand). The gaps are computed in daemon.keyaccess (the certs-installed step uses them too).
"""

from __future__ import annotations

from collections.abc import Iterable

from collectors.model import Finding, Severity
from collectors.winrm.collector import SOURCE as WINRM
from daemon.context import Context, in_use, listing
from daemon.inventory import label
from daemon.keyaccess import key_acl_gaps

RULE = "private-key-acl-missing"
UNVERIFIED_RULE = "private-key-acl-unverified"
STEP = "certs-installed"


def key_acl_findings(ctx: Context) -> Iterable[Finding]:
    """A node holds a certificate of a role whose service accounts cannot read its private key."""
    for gap in key_acl_gaps(ctx):
        severity = Severity.CRITICAL if gap.rotating or in_use(ctx, gap.thumbprint) else Severity.WARNING
        when = "after the switch to it" if gap.rotating else "when it is used"
        if gap.unknown:
            yield Finding(
                UNVERIFIED_RULE,
                Severity.WARNING,
                f"{gap.node}: cannot tell whether {'; '.join(gap.unknown)} can read the private key of {gap.role} "
                f"certificate {label(ctx, gap.thumbprint)} ({gap.file}): no rule grants it directly; if it is not a "
                f'member, the service fails with "Keyset does not exist" {when}: grant Read on the key to the '
                "account itself (Configure-PreReqs.ps1, or certlm.msc > Manage Private Keys)",
                role=gap.role,
                thumbprint=gap.thumbprint,
                node=gap.node,
                source=WINRM,
                target=gap.target,
                step=STEP,
            )
        if not gap.missing:
            continue
        yield Finding(
            RULE,
            severity,
            f"{gap.node}: {listing(list(gap.missing))} cannot read the private key of {gap.role} certificate "
            f'{label(ctx, gap.thumbprint)} ({gap.file}); the service fails with "Keyset does not exist" '
            f"{when}: grant Read on the key (Configure-PreReqs.ps1, or certlm.msc > Manage Private Keys)",
            role=gap.role,
            thumbprint=gap.thumbprint,
            node=gap.node,
            source=WINRM,
            target=gap.target,
            step=STEP,
        )
