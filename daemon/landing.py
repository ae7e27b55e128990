"""The exporter listener's landing page at `/`: what this daemon is and where its pages are."""

from __future__ import annotations

from html import escape

from daemon import __version__

#: No scripts, no external assets: the page only links.
HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}


def landing_page(environment: str, status_url: str | None) -> str:
    """A small HTML page linking /metrics, /healthz and the status page (when the API listener runs)."""
    status = (
        f'<li><a href="{escape(status_url, quote=True)}">Status page</a>: the rotation checklist, findings and '
        "the next action</li>"
        if status_url
        else "<li>Status page: off (<code>api.enabled: false</code>)</li>"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>certmon · {escape(environment)}</title>"
        "<style>body{font:14px/1.45 system-ui,sans-serif;margin:24px}</style></head><body>"
        f"<h1>certmon {escape(__version__)}</h1><p>Environment <b>{escape(environment)}</b></p><ul>"
        '<li><a href="metrics">Metrics</a>: for Prometheus</li>'
        '<li><a href="healthz">Health</a>: the scheduler and the state store</li>'
        f"{status}</ul></body></html>\n"
    )
