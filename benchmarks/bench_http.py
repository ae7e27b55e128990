"""The HTTP listener under attack, side by side with ThreadingHTTPServer, cheroot and waitress.

Each listener runs in a process of its own (tests/reliability/httpchild.py) serving the same
/metrics bytes; the attackers and a legitimate scraper (20 scrapes, 10 s timeout each) run here:

1. slowloris: 1,200 connections holding unfinished request heads (reopened when closed), the
   listener's process limited to 700 descriptors; then whether it can still open 256 files and
   a socket for its collectors;
2. 2,000 concurrent scrapes (each client twice);
3. 250 clients holding 15 KB heads, then 250 sending 1 MB of header lines: peak RSS growth.

cheroot (CherryPy's server) and waitress are the production pure-Python servers that run on
Windows and Linux; cheroot also does TLS with client certificates (the exporter-toolkit web
config's needs), waitress does no TLS. Each gets an exporter's sizing (8 worker threads).

Run: .venv/bin/python benchmarks/bench_http.py [certmon threading cheroot waitress]
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.reliability.test_http_limits import SCRAPES, Slowloris, _flood, child, scrape


def _scrapes(port: int, count: int = SCRAPES) -> tuple[int, float]:
    """(failures, worst seconds) of `count` scrapes."""
    failures, worst = 0, 0.0
    for _ in range(count):
        try:
            status, seconds = scrape(port)
        except OSError:
            failures, worst = failures + 1, max(worst, 10.0)
            continue
        failures += status != 200
        worst = max(worst, seconds)
    return failures, worst


def slowloris(threading_baseline: bool | str) -> dict[str, float]:
    """Scrapes and collector room during 1,200 slow connections, 700 descriptors."""
    with child(700, threading_baseline) as listener, Slowloris(listener.port, 1200):
        # A server that stops accepting at its own limit (waitress: 100) holds that many, nearly.
        held = min(200, int(listener.cap * 0.9)) if listener.cap else 200
        listener.wait_for(lambda s: s["connections"] + s["evicted"] >= held)
        failures, worst = _scrapes(listener.port)
        room = listener.ask("files")
    return {"failures": failures, "worst_s": worst, "collectors_ok": float(room.get("ok", False))}


def flood(threading_baseline: bool | str) -> dict[str, float]:
    """Scrapes during 2,000 concurrent scrapes."""
    with child(None, threading_baseline) as listener:
        answers: list[int] = []
        done = threading.Event()

        def run() -> None:
            answers.extend(asyncio.run(_flood(listener.port, 2000, 2)))
            done.set()

        threading.Thread(target=run, daemon=True).start()
        failures, worst = _scrapes(listener.port)
        done.wait(600)
    return {"failures": failures, "worst_s": worst, "flood_ok": answers.count(200) / max(len(answers), 1)}


def big_headers(threading_baseline: bool | str) -> dict[str, float]:
    """Peak RSS growth from 250 held 15 KB heads and 250 senders of 1 MB of header lines."""
    line = b"X-Big: " + b"a" * 1000 + b"\r\n"
    blast = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (b"X-Huge: " + b"b" * 65000 + b"\r\n") * 16
    with child(None, threading_baseline) as listener:
        before = listener.ask("state")
        held = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + line * 15 + b"X-Slow: "
        with Slowloris(listener.port, 250, held):

            def send() -> None:
                try:
                    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
                        sock.sendall(blast)
                        while sock.recv(65536):
                            pass
                except OSError:
                    pass

            senders = [threading.Thread(target=send) for _ in range(250)]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join(60)
            after = listener.ask("state")
    return {"grown_mib": (after["peak_rss_kib"] - before["rss_kib"]) / 1024}


SERVERS: dict[str, bool | str] = {"certmon": False, "threading": True, "cheroot": "cheroot", "waitress": "waitress"}


def measure(names: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Every attack against each listener (certmon's, the stdlib's and two libraries'); print and return the figures."""
    figures: dict[str, dict[str, float]] = {}
    for name in names or list(SERVERS):
        baseline = SERVERS[name]
        figures[name] = {
            **{f"slowloris_{k}": v for k, v in slowloris(baseline).items()},
            **{f"flood_{k}": v for k, v in flood(baseline).items()},
            **{f"headers_{k}": v for k, v in big_headers(baseline).items()},
        }
        print(name, figures[name], flush=True)
    print("HTTP listener under attack, same /metrics bytes: " + " | ".join(figures))
    rows = (
        ("slowloris 1,200 conns, 700 fds: failed scrapes of 20", "slowloris_failures", "{:.0f}"),
        ("  worst scrape", "slowloris_worst_s", "{:.2f} s"),
        ("  collectors can open 256 files + a socket", "slowloris_collectors_ok", "{:.0f}"),
        ("2,000 concurrent scrapes: failed scrapes of 20", "flood_failures", "{:.0f}"),
        ("  worst scrape", "flood_worst_s", "{:.2f} s"),
        ("  flood scrapes answered 200", "flood_flood_ok", "{:.0%}"),
        ("large headers, 500 clients: peak RSS growth", "headers_grown_mib", "{:.1f} MiB"),
    )
    for title, key, fmt in rows:
        cells = " | ".join(f"{fmt.format(values[key]):>10}" for values in figures.values())
        print(f"  {title:48} {cells}")
    return figures


if __name__ == "__main__":
    measure(sys.argv[1:] or None)
