"""TLS and TDS peers that trickle or flood: the probe's work ends at its deadline, not only each wait.

A peer that sends one byte at a time resets a per-read timeout forever; the probe must count
the whole handshake against the source's deadline. Each peer is a raw socket server on
loopback; the test waits for the probe to return (bounded by a generous join that only decides
failure) and checks the reason it gives and that the peer saw the connection closed.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pytest

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.tls.collector import Endpoint, TlsCollector
from simulator.lab import Lab

DEADLINE = 1.5
JOIN = 60.0  # only decides failure: a probe still running after a minute is a probe that never ends


class Trickler:
    """Accepts one connection, reads the client's first bytes, then sends `prefix` and one byte per `pace`."""

    def __init__(self, prefix: bytes, filler: bytes = b"\x00", pace: float = 0.02, flood: bool = False) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.prefix, self.filler, self.pace, self.flood = prefix, filler, pace, flood
        self.stop = threading.Event()
        self.closed_by_client = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        try:
            self.listener.settimeout(JOIN)
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(JOIN)
            try:
                conn.recv(65536)  # the ClientHello or PRELOGIN
                conn.sendall(self.prefix)
                chunk = self.filler * (65536 if self.flood else 1)
                while not self.stop.is_set():
                    conn.sendall(chunk)
                    self.sent += len(chunk)
                    if not self.flood:
                        self.stop.wait(self.pace)
            except OSError:
                self.closed_by_client.set()

    @contextmanager
    def running(self) -> Iterator[Trickler]:
        self.thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            self.listener.close()
            self.thread.join(JOIN)


def _probe(lab: Lab, now: datetime, port: int, kind: str) -> CollectorError:
    endpoint = Endpoint("hostile", "sql1.contoso.lab", port, kind=kind, addresses=("127.0.0.1",))
    collector = TlsCollector([endpoint], lab.ca_bundle, clock=lambda: now)
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(collector.collect(endpoint.name, Deadline.after(DEADLINE)))
        except BaseException as err:  # handed to the test thread
            outcome.append(err)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(JOIN)
    assert not worker.is_alive(), "the probe did not end at its deadline"
    (result,) = outcome
    assert isinstance(result, CollectorError), result
    return result


# A TLS handshake record announcing 16 KiB, whose body then arrives a byte at a time (or never ends).
HANDSHAKE_RECORD = b"\x16\x03\x03\x40\x00" + b"\x02\x00\x3f\xfc"
# A TDS PRELOGIN answer (packet type 4) announcing 4,096 bytes, then trickled.
TDS_PACKET = b"\x04\x01\x10\x00\x00\x00\x01\x00"


@pytest.mark.parametrize(
    ("kind", "prefix"),
    [("tls", HANDSHAKE_RECORD), ("tds", TDS_PACKET)],
    ids=["tls handshake", "tds prelogin"],
)
def test_a_trickling_peer_ends_at_the_deadline(lab: Lab, now: datetime, kind: str, prefix: bytes) -> None:
    with Trickler(prefix).running() as peer:
        err = _probe(lab, now, peer.port, kind)
        assert err.reason is Reason.TIMEOUT, err
        assert peer.closed_by_client.wait(JOIN), "the probe left the trickling connection open"
    assert 0 < peer.sent < 10_000


def test_a_flooding_peer_is_refused_without_reading_it_all(lab: Lab, now: datetime) -> None:
    # Garbage records as fast as loopback carries them: the handshake fails on the first one.
    with Trickler(b"\x17\x03\x03\x40\x00", filler=b"\xaa", flood=True).running() as peer:
        err = _probe(lab, now, peer.port, "tls")
        assert err.reason in {Reason.TLS_ERROR, Reason.PROTOCOL_ERROR}, err
        assert peer.closed_by_client.wait(JOIN)
