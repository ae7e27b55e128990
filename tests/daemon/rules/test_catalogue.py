"""The rule catalogue matches the code and the scenario tests; the registry contract holds."""

from __future__ import annotations

import re
from pathlib import Path

from daemon.rotation import STEPS
from daemon.rules import CATALOGUE, RULES, catalogue
from tests.conftest import ROOT

RULE_SOURCES = "\n".join(p.read_text() for p in (ROOT / "daemon" / "rules").glob("*.py") if p.name != "__init__.py")
SCENARIOS = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py") if p.name != "test_catalogue.py")
SCENARIOS += (ROOT / "tests" / "daemon" / "test_evaluator.py").read_text()


def test_every_implemented_rule_is_emitted_by_the_code_and_has_scenarios() -> None:
    for info in CATALOGUE:
        assert f'"{info.id}"' in RULE_SOURCES, f"{info.id}: no rule emits it"
        assert f'"{info.id}"' in SCENARIOS, f"{info.id}: no scenario test"


def test_every_emitted_id_is_catalogued() -> None:
    emitted = set(re.findall(r'Finding\(\s*"([a-z0-9-]+)"', RULE_SOURCES))
    emitted |= set(re.findall(r'rule, severity = "([a-z0-9-]+)"', RULE_SOURCES))
    assert emitted and all(catalogue(rule) is not None for rule in emitted), emitted


def test_catalogue_names_real_steps_and_rules_are_documented() -> None:
    steps = {s.id for s in STEPS}
    assert {info.step for info in CATALOGUE if info.step} <= steps
    assert len({info.id for info in CATALOGUE}) == len(CATALOGUE)
    assert all(rule.__doc__ for rule in RULES)
    assert len({s.id for s in STEPS}) == len(STEPS) == 15
