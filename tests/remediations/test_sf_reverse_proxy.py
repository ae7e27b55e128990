"""A reverse proxy with a certificate of its own (Microsoft's sample shape) through stage, upgrade and clean-up.

Regression for issue 16, gate 3: staging used to set the reverse proxy's primary to the new
server certificate and move its own certificate to secondary, so the clean-up dropped it.
Each slot now moves only from its own old thumbprint; the other slots stay untouched, and the
refusals name each slot's state.
"""

from __future__ import annotations

import json
from datetime import datetime

from collectors.clusterconfig import load_cluster_config, member_key
from remediations.outcome import Outcome
from remediations.servicefabric import CleanupOldCerts, StageRotation
from tests.sfkit import SfLab, remediating


def _own_reverse_proxy(sf: SfLab) -> str:
    """Give the running configuration and the (unstaged) file a reverse proxy certificate of its own."""
    own = sf.lab.cert("SSRSHTTPS", "old").thumbprint
    sf.unstage_file()
    for load, store in (
        (lambda: sf.lab.cluster_config.read_text(encoding="utf-8"), sf.lab.cluster_config.write_text),
        (sf.cluster.running_text, None),
    ):
        document = json.loads(load())
        properties = document[member_key(document, "properties")]
        info = properties[member_key(properties, "security")]["CertificateInformation"]
        info["ReverseProxyCertificate"] = {"Thumbprint": own, "X509StoreName": "My"}
        text = json.dumps(document, indent=4)
        if store is None:
            sf.cluster.config_text = text
        else:
            sf.lab.cluster_config.write_bytes(text.replace("\n", "\r\n").encode())
    return own


def _slots(sf: SfLab) -> dict[str, tuple[str, str]]:
    return {
        c.kind: (c.thumbprint, c.thumbprint_secondary) for c in load_cluster_config(sf.lab.cluster_config).certificates
    }


def test_the_reverse_proxy_keeps_its_own_certificate_through_the_rotation(sf: SfLab, now: datetime) -> None:
    own = _own_reverse_proxy(sf)
    old, new = sf.lab.cert("ServiceFabric", "old").thumbprint, sf.lab.cert("ServiceFabric", "new").thumbprint
    run = remediating(sf, now)
    try:
        failed = [c for c in StageRotation().preconditions(run.ctx) if not c.ok]
        assert failed == [], failed
        staged = run.engine.apply(StageRotation(), run.ctx)
    finally:
        run.close()
    assert staged.outcome is Outcome.APPLIED, staged.message
    assert _slots(sf) == {"cluster": (new, old), "server": (new, old), "reverse_proxy": (own, "")}
    sf.finish_upgrade()
    sf.finish_reencryption()
    later = remediating(sf, now)
    try:
        cleaned = later.engine.apply(CleanupOldCerts(), later.ctx)
    finally:
        later.close()
    assert cleaned.outcome is Outcome.APPLIED, cleaned.message
    assert _slots(sf) == {"cluster": (new, ""), "server": (new, ""), "reverse_proxy": (own, "")}
    sf.finish_upgrade()
    running = json.loads(sf.cluster.running_text())
    info = running["Properties"]["Security"]["CertificateInformation"]
    assert info["ReverseProxyCertificate"] == {"Thumbprint": own, "X509StoreName": "My"}


def test_a_mixed_file_names_each_slot(sf: SfLab, now: datetime) -> None:
    own = _own_reverse_proxy(sf)
    old, new = sf.lab.cert("ServiceFabric", "old").thumbprint, sf.lab.cert("ServiceFabric", "new").thumbprint
    document = json.loads(sf.lab.cluster_config.read_text(encoding="utf-8"))
    document["properties"]["security"]["CertificateInformation"]["ClusterCertificate"] = {
        "Thumbprint": new,
        "ThumbprintSecondary": old,
        "X509StoreName": "My",
    }
    sf.lab.cluster_config.write_text(json.dumps(document, indent=4), encoding="utf-8")
    run = remediating(sf, now)
    try:
        result = run.engine.apply(CleanupOldCerts(), run.ctx)
    finally:
        run.close()
    assert result.outcome is Outcome.REFUSED
    assert f"cluster: staged (Thumbprint {new}, ThumbprintSecondary {old})" in result.message
    assert f"server: before (Thumbprint {old})" in result.message
    assert f"reverse_proxy: its own certificate {own}, not part of this rotation (left as it is)" in result.message
