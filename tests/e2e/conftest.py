"""Fixtures of the end-to-end tests: the webhook receiver and Alertmanager, shared by a module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.e2e.peers import ALERTMANAGER, PROMETHEUS, Service, Webhook, alertmanager_config


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    """The webhook receiver."""
    receiver = Webhook()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory, webhook: Webhook) -> Iterator[Service]:
    """Debian's prometheus-alertmanager, clustering off, sending to the webhook."""
    if PROMETHEUS is None or ALERTMANAGER is None:
        pytest.skip("prometheus and prometheus-alertmanager (Debian packages) are needed; scripts/system-packages")
    folder = tmp_path_factory.mktemp("alertmanager")
    port = free_port()
    service = Service(
        [
            ALERTMANAGER,
            f"--config.file={alertmanager_config(folder, webhook)}",
            f"--storage.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        port,
        folder / "alertmanager.log",
    )
    yield service
    service.close()
