"""Fixtures of the rotation checklist tests: an editable lab scenario."""

from __future__ import annotations

from datetime import datetime

import pytest

from simulator.lab import Lab
from tests.daemon.scenarios import Scenario


@pytest.fixture
def scenario(lab_copy: Lab, now: datetime) -> Scenario:
    """A private, editable copy of the session's staged lab."""
    return Scenario(lab_copy, now)
