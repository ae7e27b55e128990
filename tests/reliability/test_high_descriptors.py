"""Collectors keep working when the process holds more than 1,024 descriptors (select() cannot wait on them)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import datetime

import pytest

from collectors.base import Deadline
from collectors.model import Observation
from collectors.tls import Endpoint, TlsCollector, TlsEndpointFacts
from simulator.lab import Lab
from simulator.tls import TlsEndpointServer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="descriptor numbers are a POSIX matter")


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """Hold 1,100 descriptors open so that every socket opened next is numbered above 1,023."""
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)


def test_a_tls_probe_above_descriptor_1024(lab: Lab, now: datetime, many_descriptors: None) -> None:
    star = lab.cert("ServiceFabric", "new").issued
    with TlsEndpointServer(star, (lab.ca,)) as server:
        endpoint = Endpoint("aos", "ax.d365ffo.onprem.contoso.lab", server.port, addresses=("127.0.0.1",))
        collector = TlsCollector([endpoint], lab.ca_bundle, clock=lambda: now)
        observation: Observation = collector.collect(endpoint.name, Deadline.after(10))
    assert isinstance(observation.facts, TlsEndpointFacts)
    probe = observation.facts.probes[0]
    assert probe.success and probe.chain_valid, probe
    assert observation.certificates[0].thumbprint == star.thumbprint
