"""The evidence bundle for a change ticket: the checklist with its evidence, the findings, the remediations
applied (plans and audit records) and the certificates involved, as one self-contained HTML report, the same
as JSON, and a SHA-256 manifest (`sha256sum -c MANIFEST.sha256` checks it without certmon).

Built from the status document and the audit file (audit.jsonl, already redacted when written);
reading is bounded, nothing is sent anywhere.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from collectors.model import CertReference
from daemon import __version__

REPORT, DATA, MANIFEST = "evidence.html", "evidence.json", "MANIFEST.sha256"
#: the newest part of the audit file read (older applies are in the file itself)
AUDIT_TAIL_BYTES = 8 * 1024 * 1024
#: apply records kept in one bundle
MAX_APPLIED = 500


class BundleError(Exception):
    """The bundle cannot be written where asked; the message names the folder and why."""


def applied_remediations(audit_file: Path, limit: int = MAX_APPLIED) -> list[dict[str, Any]]:
    """The newest `apply` records of the audit file (whole lines only; a torn or foreign line is skipped)."""
    try:
        with open(audit_file, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - AUDIT_TAIL_BYTES))
            tail = handle.read(AUDIT_TAIL_BYTES)
    except FileNotFoundError:
        return []
    lines = tail.split(b"\n")
    if len(tail) == AUDIT_TAIL_BYTES:
        lines = lines[1:]  # the first line may start mid-record
    records: list[dict[str, Any]] = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("mode") == "apply":
            records.append(record)
    return records[-limit:]


def involved_certificates(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One entry per certificate the rotation or a finding names, with where it was seen."""
    named = {r["thumbprint"] for r in document.get("references", ()) if r.get("thumbprint")}
    named |= {f["thumbprint"] for f in document.get("findings", ()) if f.get("thumbprint")}
    named |= {c["thumbprint"] for c in document.get("old_certificates", ())}
    out: dict[str, dict[str, Any]] = {}
    for cert in document.get("certificates", ()):
        thumbprint = cert.get("thumbprint")
        if thumbprint not in named:
            continue
        entry = out.setdefault(
            thumbprint,
            {
                "thumbprint": thumbprint,
                "subject": cert.get("subject"),
                "issuer": cert.get("issuer"),
                "not_before": cert.get("not_before"),
                "not_after": cert.get("not_after"),
                "roles": sorted(set(cert.get("roles") or ())),
                "seen_at": [],
            },
        )
        entry["seen_at"].append(f"{cert.get('source')} {cert.get('node') or ''} {cert.get('store') or ''}".strip())
    return sorted(out.values(), key=lambda c: (c["roles"], c["thumbprint"]))


def build_bundle(document: Mapping[str, Any], applied: Sequence[Mapping[str, Any]], now: datetime) -> dict[str, bytes]:
    """The bundle's files by name (the manifest last)."""
    data = {
        "certmon_version": __version__,
        "environment": document.get("environment"),
        "generated_at": now.isoformat(),
        "collected_at": document.get("collected_at"),
        "next_action": document.get("next_action"),
        "checklist": document.get("checklist", []),
        "old_certificates": document.get("old_certificates", []),
        "findings": document.get("findings", []),
        "sources": document.get("sources", []),
        "remediations_applied": list(applied),
        "certificates": involved_certificates(document),
    }
    files = {
        DATA: json.dumps(data, indent=1, ensure_ascii=False, default=str).encode(),
        REPORT: render_report(data).encode(),
    }
    files[MANIFEST] = "".join(f"{hashlib.sha256(body).hexdigest()}  {name}\n" for name, body in files.items()).encode()
    return files


def write_bundle(files: Mapping[str, bytes], directory: Path) -> list[Path]:
    """Write the files into `directory` (created; refused when it holds anything), each written then renamed."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise BundleError(f"{directory}: not empty; give a new or empty folder for the evidence bundle")
    written = []
    for name, body in files.items():
        target = directory / name
        partial = directory / f".{name}.partial"
        with open(partial, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
        written.append(target)
    return written


def zip_bundle(files: Mapping[str, bytes], folder: str) -> bytes:
    """The bundle as one ZIP (the status page's download), files under `folder/`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in files.items():
            archive.writestr(f"{folder}/{name}", body)
    return buffer.getvalue()


_CSS = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1f2328}"
    "table{border-collapse:collapse;margin:8px 0 20px}"
    "td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f6f8fa}"
    ".done{color:#1a7f37}.pending,.critical{color:#cf222e}.unknown,.warning{color:#9a6700}pre{white-space:pre-wrap}"
)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> str:
    if not rows:
        return f"<p>{escape(empty)}</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_report(data: Mapping[str, Any]) -> str:
    """The bundle as one HTML page: no scripts, no external assets, every value escaped."""
    e = escape
    checklist = [
        (
            e(s["step"]),
            e(s["title"]),
            f'<span class="{e(s["status"])}">{e(s["status"])}</span>',
            e(s["detail"]) + "".join(f"<br>· {e(line)}" for line in s.get("evidence", [])),
        )
        for s in data["checklist"]
    ]
    findings = [
        (f'<span class="{e(f["severity"])}">{e(f["severity"])}</span>', e(f["rule"]), e(f["message"]))
        for f in data["findings"]
    ]
    applied = [
        (
            e(str(r.get("at", ""))),
            e(str(r.get("remediation", ""))),
            e(str(r.get("actor", ""))),
            e(str(r.get("outcome", ""))),
            f"<pre>{e(json.dumps(r.get('plan'), indent=1, default=str))}</pre>" if r.get("plan") else "",
        )
        for r in data["remediations_applied"]
    ]
    certificates = [
        (
            e(c["thumbprint"]),
            e(", ".join(c["roles"])),
            e(str(c["subject"])),
            e(str(c["not_after"])),
            e("; ".join(c["seen_at"])),
        )
        for c in data["certificates"]
    ]
    old = [(e(c["role"]), e(c["thumbprint"]), "yes" if c["safe_to_remove"] else "no") for c in data["old_certificates"]]
    action = data.get("next_action") or {}
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>certmon evidence · {e(str(data['environment']))}</title><style>{_CSS}</style></head><body>"
        f"<h1>Certificate rotation evidence: {e(str(data['environment']))}</h1>"
        f"<p>Generated {e(str(data['generated_at']))} by certmon {e(str(data['certmon_version']))} from the "
        f"collection of {e(str(data['collected_at']))}. The same data is in evidence.json; MANIFEST.sha256 "
        "lists the SHA-256 of both files.</p>"
        f"<h2>Next action</h2><p>{e(str(action.get('what', '')))}</p>"
        "<h2>Rotation checklist</h2>"
        + _table(("step", "runbook step", "status", "evidence"), checklist, "No rotation steps.")
        + "<h2>Old certificates</h2>"
        + _table(("role", "thumbprint", "safe to remove"), old, "No previous-generation certificates.")
        + "<h2>Findings</h2>"
        + _table(("severity", "rule", "message"), findings, "No findings.")
        + "<h2>Remediations applied</h2>"
        + _table(("at", "remediation", "by", "outcome", "plan"), applied, "No remediation was applied.")
        + "<h2>Certificates involved</h2>"
        + _table(("thumbprint", "roles", "subject", "not after", "seen at"), certificates, "None.")
        + "</body></html>\n"
    )


def bundle_document(
    status: Mapping[str, Any], certificates: Sequence[Mapping[str, Any]], references: Iterable[CertReference]
) -> dict[str, Any]:
    """The status document with the certificates and the references, what a bundle is built from."""
    return {
        **status,
        "certificates": list(certificates),
        "references": [
            {"role": r.role, "thumbprint": r.thumbprint, "generation": str(r.generation)} for r in references
        ],
    }
