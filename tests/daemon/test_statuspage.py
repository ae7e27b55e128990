"""The status page in headless Chromium (Debian's `chromium`): the checklist renders, values are escaped."""

from __future__ import annotations

import shutil
import struct
import subprocess
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from daemon.app import Daemon
from simulator.lab import Lab
from simulator.pki import days, make_certificate
from tests.daemon.apikit import call, running

CHROMIUM = shutil.which("chromium")
chromium_only = pytest.mark.skipif(CHROMIUM is None, reason="chromium (Debian package chromium) is not installed")
HOSTILE_CN = "<script>x</script><img src=x>"


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Dom(HTMLParser):
    """The elements of a page (tag, attributes) and the text of each element with an id."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def having(self, attribute: str) -> list[dict[str, str]]:
        """Attributes of every element that has `attribute`."""
        return [attrs for _tag, attrs in self.elements if attribute in attrs]

    def tags(self, name: str) -> list[dict[str, str]]:
        """Attributes of every element of one tag."""
        return [attrs for tag, attrs in self.elements if tag == name]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@chromium_only
def test_the_checklist_renders_in_chromium(lab_copy: Lab, now: datetime, tmp_path: Path) -> None:
    with running(lab_copy, now) as daemon:
        assert daemon.api is not None
        url = daemon.api.url + "/"
        document = call(daemon.api.url + "/api/status").json()
        dumped = _chromium(tmp_path, "--dump-dom", url)
        screenshot = tmp_path / "status-page.png"
        shot = _chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1400,2000", url)
    assert dumped.returncode == 0, dumped.stderr
    dom = Dom(dumped.stdout)
    steps = [(a["data-step"], a["data-status"]) for a in dom.having("data-step")]
    assert steps == [(s["step"], s["status"]) for s in document["checklist"]]
    assert len(steps) == 15 and ("localagent-updated", "pending") in steps
    rules = [a["data-rule"] for a in dom.having("data-rule")]
    assert rules == [f["rule"] for f in document["findings"]] and "agent-config-thumbprint-stale" in rules
    assert "localagent-config-update" in "".join(dom.text), "findings name their remediation"
    nodes = [a["data-node"] for a in dom.having("data-node")]
    assert nodes == ["ORCH1", "ORCH2", "ORCH3", "AOS1", "AOS2", "AOS3", "BI1", "MR1", "SQL1"]
    states = {(a["data-role"], a["data-state"]) for a in dom.having("data-role")}
    assert ("DataEncryption", "critical") in states and ("DataEncryption", "not-needed") in states
    assert {a["data-safe"] for a in dom.having("data-safe")} == {"no"}, "nothing old is safe to remove yet"
    assert {a["data-source"] for a in dom.having("data-source")} == {
        "configtemplate",
        "clusterconfig",
        "localagent",
        "certfolder",
        "sql",
        "agentshare",
        "credentials",
    }
    action = document["next_action"]
    (shown,) = dom.having("data-next-kind")
    assert (shown["data-next-kind"], shown["data-next-step"]) == (action["kind"], action["step"])
    assert action["kind"] == "critical-finding" and action["what"] in "".join(dom.text), "the next action is said"
    offered = [a["data-next-remediation"] for a in dom.having("data-next-remediation")]
    assert offered == [r["name"] for r in action["remediations"]]
    assert all(f"certmon remediate {name}" in "".join(dom.text) for name in offered), "with its dry-run command"
    # The pre-flight checks of the next Service Fabric configuration upgrade, each with its result and reason;
    # without a gateway source the checks that need the running cluster are unknown, never passed.
    preflight = document["preflight"]
    (summary,) = dom.having("data-remediation")
    assert summary["data-remediation"] == preflight["remediation"] == "sf-stage-rotation"
    shown_checks = [(a["data-check"], a["data-result"]) for a in dom.having("data-check")]
    assert shown_checks == [(c["name"], c["result"]) for c in preflight["checks"]]
    results = dict(shown_checks)
    assert results["ClusterConfig.json read"] == "pass"
    assert results["no upgrade in progress"] == "unknown"
    assert all(c["reason"] in "".join(dom.text) for c in preflight["checks"]), "each with its reason"
    assert [a["id"] for a in dom.tags("section")] == [
        "next",
        "checklist",
        "preflight",
        "findings",
        "certificates",
        "elsewhere",
        "old",
        "sources",
    ]
    assert shot.returncode == 0, shot.stderr
    assert _png_size(screenshot) == (1400, 2000) and screenshot.stat().st_size > 50_000


@chromium_only
def test_values_are_escaped(lab_copy: Lab, now: datetime, tmp_path: Path) -> None:
    hostile = make_certificate(HOSTILE_CN, not_before=days(now, -30), not_after=days(now, 5))
    (lab_copy.certs_dir / "AOS1" / "hostile.cer").write_bytes(hostile.der)
    with running(lab_copy, now) as daemon:
        assert daemon.api is not None
        dumped = _chromium(tmp_path, "--dump-dom", daemon.api.url + "/")
    assert dumped.returncode == 0, dumped.stderr
    dom = Dom(dumped.stdout)
    assert dom.tags("script") == [] and dom.tags("img") == [], "markup in data never becomes elements"
    assert any(HOSTILE_CN in text for text in dom.text), "it is shown as text"
    finding = next(a for a in dom.having("data-rule") if a["data-rule"] == "cert-expiry-critical")
    assert finding["data-severity"] == "critical"


def test_the_page_is_self_contained_and_locked_down(lab: Lab, now: datetime) -> None:
    with running(lab, now) as daemon:
        assert daemon.api is not None
        page = call(daemon.api.url + "/")
        head = call(daemon.api.url + "/", "HEAD")
    assert page.status == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'; style-src 'unsafe-inline'")
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"
    dom = Dom(page.body.decode())
    assert dom.tags("script") == [] and dom.tags("link") == [] and dom.tags("img") == []
    links = [a["href"] for a in dom.tags("a")]
    assert links and all(href.startswith("#") or href in ("api/status", "api/evidence") for href in links), links
    assert head.status == 200 and head.body == b""
    assert int(head.headers["Content-Length"]) == len(page.body)


def test_the_page_renders_the_latest_view_without_reading_anything(lab_copy: Lab, now: datetime) -> None:
    with running(lab_copy, now) as daemon:
        assert daemon.api is not None
        first = call(daemon.api.url + "/").body
        # Every input gone: a request must not notice, because it never reads them.
        shutil.rmtree(lab_copy.certs_dir)
        lab_copy.localagent_config.unlink()
        again = call(daemon.api.url + "/").body
        assert again == first
        # The next collection sees the change, and the page follows the new view.
        daemon.collect_once()
        after = call(daemon.api.url + "/").body.decode()
    assert after != first.decode()
    sources = {(a["data-source"], a["data-state"]) for a in Dom(after).having("data-source")}
    assert ("localagent", "stale") in sources


def test_a_daemon_without_the_api_serves_no_page(lab: Lab, now: datetime) -> None:
    from daemon.settings import load_settings

    settings = load_settings(lab.config_file)
    settings.api.enabled = False
    daemon = Daemon(settings, clock=lambda: now)
    try:
        daemon.collect_once()
        daemon.start(schedule=False)
        assert daemon.api is None and daemon.http is not None
        landing = call(daemon.http.url + "/")  # the exporter's landing page, which says the page is off
        assert landing.status == 200 and b"Status page: off" in landing.body and b"checklist" not in landing.body
    finally:
        daemon.stop()
