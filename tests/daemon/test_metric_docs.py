"""Every metric family certmon exports is documented in README's metric table."""

from __future__ import annotations

import re
from datetime import datetime

from collectors.base import Collector
from daemon.metrics import build_families
from daemon.sources.registry import build_collectors
from simulator.lab import Lab
from tests.conftest import ROOT
from tests.daemon.scenarios import Scenario


def test_every_exported_family_is_in_the_readme(lab_copy: Lab, now: datetime) -> None:
    scenario = Scenario(lab_copy, now)
    readme = ROOT.joinpath("README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(certmon_[a-z0-9_]+)`", readme, re.M))
    evaluation = scenario.collect()
    collectors = {c.name: c for c in build_collectors(scenario.settings())}
    exported = {f.name + ("_total" if f.type == "counter" else "") for f in build_families(evaluation, collectors)}
    exported |= {spec.name for kind in _collector_classes(Collector) for spec in kind.metrics}
    assert exported - documented == set(), "document these in README's Metrics table"


def _collector_classes(base: type[Collector]) -> set[type[Collector]]:
    """Every collector class (daemon.sources imports them all), configured in the lab or not."""
    found = set(base.__subclasses__())
    for kind in list(found):
        found |= _collector_classes(kind)
    return found
