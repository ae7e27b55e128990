"""A Service Fabric gateway (or anything at its address), or a JSON file, that floods certmon with values.

16 MiB of `[{},{},...]` cost 461 MiB to parse; the client refuses answers past its body cap, and
smaller answers holding more values than its budget, before building any object.
"""

from __future__ import annotations

import resource
from datetime import datetime
from pathlib import Path

import pytest

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.files import load_json
from collectors.jsonbudget import MAX_JSON_VALUES, loads_within, value_bound
from collectors.servicefabric import api
from collectors.servicefabric.client import MAX_BODY
from collectors.servicefabric.connector import Connector
from simulator.lab import Lab
from tests.sfkit import sf_lab


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _values(count: int) -> bytes:
    return b"[" + b",".join([b"{}"] * count) + b"]"


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (_values(16 * 1024 * 1024 // 3), "larger than"),  # the 16 MiB flood: past the body cap
        (_values(MAX_JSON_VALUES + 1), "values"),  # under the cap, past the value budget
    ],
    ids=["16MiB-of-empty-objects", "over-the-value-budget"],
)
def test_json_flood_is_refused_without_building_it(lab_copy: Lab, now: datetime, body: bytes, text: str) -> None:
    with sf_lab(lab_copy) as sf:
        sf.gateway.body_override = body
        connector = Connector(sf.config(), lambda: now)
        session = connector.open(connector.config.client_certificate, Deadline.after(30))
        peak_before = _peak_rss_mib()
        try:
            with pytest.raises(CollectorError) as caught:
                session.get(api.GET_VERSION, {"api-version": "6.4"})
        finally:
            session.close()
        grown = _peak_rss_mib() - peak_before
    assert caught.value.reason in (Reason.PARSE_ERROR, Reason.BAD_OUTPUT)
    assert text in caught.value.message, caught.value.message
    assert grown < 2 * MAX_BODY / 2**20 + 16, f"peak RSS grew {grown:.0f} MiB"


def test_real_answers_are_far_within_the_budget(lab_copy: Lab, now: datetime) -> None:
    with sf_lab(lab_copy) as sf:
        connector = Connector(sf.config(), lambda: now)
        session = connector.open(connector.config.client_certificate, Deadline.after(30))
        try:
            status, data = session.request(
                "GET", api.GET_CONFIGURATION, {"api-version": "6.0", "ConfigurationApiVersion": "10-2017"}
            )
        finally:
            session.close()
    assert status == 200
    assert value_bound(data) < MAX_JSON_VALUES / 100
    assert isinstance(loads_within(data), dict)


def test_json_file_flood_is_refused_without_building_it(tmp_path: Path) -> None:
    """File sources (ClusterConfig.json, localagent-config.json, Credentials.json) read JSON the same way."""
    path = tmp_path / "ClusterConfig.json"
    path.write_bytes(_values(30 * 1024 * 1024 // 3))  # under the 32 MiB file cap: 10 million empty objects
    peak_before = _peak_rss_mib()
    with pytest.raises(CollectorError) as caught:
        load_json(path)
    grown = _peak_rss_mib() - peak_before
    assert caught.value.reason is Reason.PARSE_ERROR
    assert caught.value.source == str(path) and "JSON values" in caught.value.message
    assert grown < 64, f"peak RSS grew {grown:.0f} MiB"
