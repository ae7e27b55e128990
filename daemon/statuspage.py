"""The read-only status page: the status document rendered as one self-contained HTML page.

No scripts, no external assets (inline CSS), every value escaped. The page is a view of
`GET /api/status` (`daemon.status.status_document`), so the two never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

REFRESH_SECONDS = 60

# Security headers for the page: nothing may load from anywhere, styles only inline.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_CSS = """
:root{--ok:#1a7f37;--warn:#9a6700;--crit:#cf222e;--mute:#57606a;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#fff}
header{background:#24292f;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px}
.next{font-size:16px;font-weight:600}
header .when{color:#c9d1d9;font-size:13px}
nav{padding:6px 24px;background:var(--bg);border-bottom:1px solid var(--line)}
nav a{margin-right:16px;color:#0969da;text-decoration:none}
main{padding:8px 24px 32px}
h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
table{border-collapse:collapse;width:100%;margin-bottom:8px}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:var(--bg);font-weight:600}
code,.tp{font:12px ui-monospace,SFMono-Regular,Consolas,monospace}
.tp{word-break:break-all}
.chips span{display:inline-block;margin:8px 8px 0 0;padding:3px 10px;border-radius:12px;background:#fff;color:#1f2328}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;
white-space:nowrap}
.s-done,.s-ok,.s-up,.s-yes{background:var(--ok)}
.s-pending,.s-warning,.s-stale{background:var(--warn)}
.s-critical,.s-expired,.s-down,.s-missing,.s-no{background:var(--crit)}
.s-unknown,.s-not-applicable,.s-info,.s-not-needed{background:var(--mute)}
.muted{color:var(--mute)}
details summary{cursor:pointer;color:var(--mute)}
ul.ev{margin:4px 0 0 0;padding-left:18px}
.scroll{overflow-x:auto}
.matrix td,.matrix th{text-align:center;white-space:nowrap;font-size:12px;padding:3px 5px}
.matrix th{white-space:normal;min-width:64px}
.matrix td.node,.matrix th.node{text-align:left}
.cell-missing{background:#ffebe9}.cell-expired,.cell-critical{background:#ffebe9}
.cell-warning{background:#fff8c5}.cell-ok{background:#dafbe1}.cell-unknown{background:#eaeef2}
.cell-not-needed{color:#8c959f}
.c{display:block;font-size:12px}
.c-old{color:var(--mute)}
footer{padding:12px 24px;color:var(--mute);border-top:1px solid var(--line);font-size:12px}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _breakable(role: str) -> str:
    """A CamelCase role name that may wrap between its words (narrow matrix columns)."""
    return "<wbr>".join(_e(word) for word in _WORD_BOUNDARY.split(role))


def _badge(state: str, text: str | None = None) -> str:
    return f'<span class="badge s-{_e(state)}">{_e(text if text is not None else state)}</span>'


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _table(section: str, headers: Iterable[str], rows: Iterable[str], empty: str) -> str:
    body = "".join(rows)
    if not body:
        return f'<p class="muted" id="{section}-empty">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    table = f'<table id="{section}-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f'<div class="scroll">{table}</div>'


def _checklist(steps: list[Mapping[str, Any]]) -> str:
    rows = []
    for index, step in enumerate(steps, 1):
        evidence = step.get("evidence") or []
        items = "".join(f"<li>{_e(line)}</li>" for line in evidence)
        # Evidence of steps still open is shown; that of settled steps is one click away.
        opened = " open" if step["status"] in ("pending", "unknown") else ""
        details = (
            f'<details{opened}><summary>evidence ({len(evidence)})</summary><ul class="ev">{items}</ul></details>'
            if evidence
            else ""
        )
        rows.append(
            f'<tr class="step" data-step="{_e(step["step"])}" data-status="{_e(step["status"])}">'
            f"<td>{index}</td><td><code>{_e(step['step'])}</code></td><td>{_e(step['title'])}</td>"
            f"<td>{_badge(step['status'])}</td><td>{_e(step['detail'])}{details}</td></tr>"
        )
    return _table("checklist", ("#", "step", "runbook step", "status", "evidence"), rows, "No rotation steps.")


def _findings(findings: list[Mapping[str, Any]]) -> str:
    rows = []
    for f in findings:
        subject = " ".join(f"{label} {_e(f[key])}" for key, label in (("role", "role"), ("node", "node")) if f.get(key))
        remedy = f"<code>{_e(f['remediation'])}</code>" if f.get("remediation") else ""
        rows.append(
            f'<tr class="finding" data-rule="{_e(f["rule"])}" data-severity="{_e(f["severity"])}">'
            f"<td>{_badge(f['severity'])}</td><td><code>{_e(f['rule'])}</code></td>"
            f"<td>{_e(f['message'])}<div class='muted'>{subject}</div></td>"
            f"<td><code>{_e(f.get('step') or '')}</code></td><td>{remedy}</td></tr>"
        )
    return _table("findings", ("severity", "rule", "message", "step", "remediation"), rows, "No findings.")


def _cell(role: str, cell: Mapping[str, Any]) -> str:
    state = cell["state"]
    lines = []
    for cert in cell["certificates"]:
        generation = cert["generation"] or "cert"
        title = f"{cert['subject_cn']} {cert['thumbprint']} not after {cert['not_after']}"
        key = "" if cert["has_private_key"] is not False else " no key"
        lines.append(
            f'<span class="c c-{_e(generation)}" title="{_e(title)}">'
            f"{_e(generation)} {cert['days_left']:.0f} d{_e(key)}</span>"
        )
    if state == "missing":
        lines.insert(0, '<span class="c"><strong>missing</strong></span>')
    elif state == "unknown":
        lines.insert(0, '<span class="c">?</span>')
    elif not lines:
        lines.append("·")
    return f'<td class="cell-{_e(state)}" data-role="{_e(role)}" data-state="{_e(state)}">{"".join(lines)}</td>'


def _matrix(matrix: Mapping[str, Any]) -> str:
    roles = matrix["roles"]
    if not matrix["nodes"]:
        reason = matrix.get("topology") or "no node certificate source reports any node"
        return f'<p class="muted" id="matrix-empty">{_e(reason)}</p>'
    head = '<th class="node">node</th>' + "".join(f'<th title="{_e(r)}">{_breakable(r)}</th>' for r in roles)
    rows = []
    for node in matrix["nodes"]:
        label = f"{_e(node['node'])} <span class='muted'>{_e(node['purpose'])}</span>"
        if not node["covered"]:
            label += f"<div class='muted'>{_e(node['reason'])}</div>"
        cells = "".join(_cell(role, node["cells"][role]) for role in roles)
        rows.append(f'<tr data-node="{_e(node["node"])}"><td class="node">{label}</td>{cells}</tr>')
    legend = (
        '<p class="muted">Days left per certificate in LocalMachine\\My, newest generation first; '
        "colour: the worst state against the role's expiry window. · not needed, ? store not read.</p>"
    )
    table = f'<table class="matrix" id="matrix-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
    return f'<div class="scroll">{table}</table></div>{legend}'


def _elsewhere(entries: list[Mapping[str, Any]]) -> str:
    rows = []
    for c in entries:
        days = f"{c['days_left']:.0f} d"
        rows.append(
            f"<tr><td>{_e(c['source'])}</td><td>{_e(c['where'])}</td><td>{_e(', '.join(c['roles']))}</td>"
            f"<td>{_e(c['subject_cn'])}</td><td class='tp'>{_e(c['thumbprint'])}</td><td>{_e(c['not_after'])}</td>"
            f"<td>{_badge(c['state'], days)}</td></tr>"
        )
    return _table(
        "elsewhere",
        ("source", "where", "roles", "subject CN", "thumbprint", "not after", "days left"),
        rows,
        "No certificates from endpoints or files.",
    )


def _old_certificates(old: list[Mapping[str, Any]]) -> str:
    rows = [
        f'<tr data-thumbprint="{_e(c["thumbprint"])}" data-safe="{"yes" if c["safe_to_remove"] else "no"}">'
        f"<td>{_e(c['role'])}</td><td class='tp'>{_e(c['thumbprint'])}</td>"
        f"<td>{_badge('yes' if c['safe_to_remove'] else 'no')}</td>"
        f"<td>{_e(', '.join(c['blocking']))}</td></tr>"
        for c in old
    ]
    return _table(
        "old", ("role", "thumbprint", "safe to remove", "still needed by"), rows, "No previous-generation certificates."
    )


def _sources(sources: list[Mapping[str, Any]]) -> str:
    rows = []
    for s in sources:
        state = "up" if s["up"] else ("stale" if s["stale"] else "down")
        detail = s["message"] or "; ".join(s["problems"])
        reason = f"<code>{_e(s['reason'])}</code> " if s.get("reason") else ""
        rows.append(
            f'<tr data-source="{_e(s["source"])}" data-state="{state}">'
            f"<td>{_e(s['source'])}</td><td>{_e(s['target'])}</td><td>{_badge(state)}</td>"
            f"<td>{_e(_age(s['age_seconds']))}</td><td>{s['duration_seconds']:.2f} s</td>"
            f"<td>{s['certificates']}</td><td>{s['references']}</td><td>{reason}{_e(detail)}</td></tr>"
        )
    return _table(
        "sources",
        ("source", "target", "state", "data age", "duration", "certs", "refs", "detail"),
        rows,
        "No sources are configured.",
    )


def _chips(summary: Mapping[str, Any]) -> str:
    steps, findings, sources, old = (
        summary["steps"],
        summary["findings"],
        summary["sources"],
        summary["old_certificates"],
    )
    parts = [
        f"rotation steps: {steps.get('done', 0)} done, {steps.get('pending', 0)} pending, "
        f"{steps.get('unknown', 0)} unknown of {steps['total']}",
        f"findings: {findings.get('critical', 0)} critical, {findings.get('warning', 0)} warning",
        f"sources: {sources['up']} up, {sources['stale']} stale, {sources['down']} down",
        f"old certificates safe to remove: {old['safe_to_remove']} of {old['total']}",
    ]
    return '<div class="chips">' + "".join(f"<span>{_e(p)}</span>" for p in parts) + "</div>"


def _next_action(action: Mapping[str, Any]) -> str:
    lines = [
        f'<p class="next" data-next-kind="{_e(action["kind"])}" data-next-step="{_e(action["step"])}">'
        f"{_e(action['what'])}</p>"
    ]
    lines += [f"<p>Blocked by: {_e(blocker)}</p>" for blocker in action["blocked_by"]]
    lines += [
        f'<p data-next-remediation="{_e(r["name"])}">Remediation <code>{_e(r["name"])}</code>: dry run with '
        f"<code>{_e(r['dry_run'])}</code>, "
        "then add <code>--apply</code>.</p>"
        for r in action["remediations"]
    ]
    return "".join(lines)


_PREFLIGHT_BADGE = {"pass": "ok", "fail": "critical", "unknown": "unknown"}


def _preflight(preflight: Mapping[str, Any]) -> str:
    if not preflight:
        return '<p class="muted" id="preflight-empty">Not computed for this view.</p>'
    name = preflight.get("remediation")
    if name is None:
        return f'<p class="muted" id="preflight-empty">{_e(preflight["summary"])}</p>'
    head = (
        f'<p id="preflight-summary" data-remediation="{_e(name)}">Before <code>{_e(name)}</code> '
        f"(step <code>{_e(preflight['step'])}</code>) starts a configuration upgrade: {_e(preflight['summary'])}. "
        f"Dry run: <code>{_e(preflight['dry_run'])}</code>.</p>"
    )
    rows = [
        f'<tr class="preflight" data-check="{_e(c["name"])}" data-result="{_e(c["result"])}">'
        f"<td>{_e(c['name'])}</td><td>{_badge(_PREFLIGHT_BADGE.get(c['result'], 'unknown'), c['result'])}</td>"
        f"<td>{_e(c['reason'])}</td></tr>"
        for c in preflight["checks"]
    ]
    return head + _table("preflight", ("check", "result", "reason"), rows, "No checks ran.")


def render_page(document: Mapping[str, Any]) -> str:
    """The status page for one status document."""
    environment = _e(document["environment"])
    sections = (
        ("next", "Next action", _next_action(document["next_action"])),
        ("checklist", "Rotation checklist", _checklist(document["checklist"])),
        ("preflight", "Pre-flight checks", _preflight(document.get("preflight") or {})),
        ("findings", f"Findings ({len(document['findings'])})", _findings(document["findings"])),
        ("certificates", "Certificates by node and role", _matrix(document["matrix"])),
        ("elsewhere", "Certificates at endpoints and in files", _elsewhere(document["matrix"]["elsewhere"])),
        ("old", "Old certificates", _old_certificates(document["old_certificates"])),
        ("sources", "Sources", _sources(document["sources"])),
    )
    nav = "".join(f'<a href="#{key}">{_e(title.split(" (")[0])}</a>' for key, title, _ in sections)
    nav += '<a href="api/evidence" download>Evidence bundle (ZIP)</a>'
    body = "".join(f'<section id="{key}"><h2>{_e(title)}</h2>{html}</section>' for key, title, html in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>certmon · {environment}</title><style>{_CSS}</style></head><body>"
        f'<header><h1>certmon · <span id="environment">{environment}</span></h1>'
        f'<div class="when">evaluated {_e(document["collected_at"])} · refreshes every {REFRESH_SECONDS} s</div>'
        f"{_chips(document['summary'])}</header><nav>{nav}</nav><main>{body}</main>"
        "<footer>Read-only view of the latest evaluation (no remote call on request). The same data as JSON: "
        '<a href="api/status">api/status</a>. Remediations run only on request: '
        "<code>certmon remediate NAME</code> or <code>POST /api/remediations/NAME/plan</code>, then "
        "<code>…/apply</code>.</footer></body></html>\n"
    )
