"""Credentials.json on the agent share: which certificate each encrypted value is encrypted to.

Every value is base64 CMS EnvelopedData (PKCS#7) made by Configure-CredentialsJson.ps1 for
the encipherment certificate (ServiceFabricEncryption, `axdataencipherment`). certmon reads the
recipient information with asn1crypto's CMS classes (issuer and serial number, or subject key
identifier) and never decrypts anything: it needs no private key and sees no secret.
"""

from __future__ import annotations

import base64
import binascii
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509

from collectors.answers import Evidence
from collectors.base import Deadline, FileCollector
from collectors.certificate import Certificate
from collectors.errors import CollectorError, Reason
from collectors.files import parse_json, read_bytes
from collectors.model import CertReference, Generation, Observation, Problem, Snapshot

SOURCE = "credentials"
ENCIPHERMENT_ROLE = "ServiceFabricEncryption"
UNKNOWN = "unknown"
MAX_VALUE_CHARS = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who can decrypt a value: a certificate by issuer and serial number, or by subject key identifier."""

    kind: str
    issuer: str = ""
    #: asn1crypto's normalised form of the issuer name, for comparison with certificates
    issuer_key: str = ""
    serial: int | None = None
    subject_key_identifier: str = ""

    def describe(self) -> str:
        """Operator-readable identity of the certificate."""
        if self.kind == "issuer_serial":
            return f"issuer {self.issuer!r}, serial {self.serial:X}" if self.serial is not None else self.issuer
        if self.kind == "subject_key_identifier":
            return f"subject key identifier {self.subject_key_identifier}"
        return f"a {self.kind} recipient"


@dataclass(frozen=True, slots=True)
class CredentialValue:
    """One encrypted value of Credentials.json (`AosSqlAuth.SqlPwd`)."""

    key: str
    recipients: tuple[Recipient, ...]
    content_algorithm: str


@dataclass(frozen=True)
class CredentialsFacts:
    """The encrypted values of Credentials.json and their recipients."""

    path: str
    values: tuple[CredentialValue, ...]


def _recipient(info: Any) -> Iterator[Recipient]:
    name = info.name
    chosen = info.chosen
    if name == "ktri":
        yield _rid(chosen["rid"])
    elif name == "kari":
        for encrypted_key in chosen["recipient_encrypted_keys"]:
            yield _rid(encrypted_key["rid"])
    else:
        yield Recipient(kind=name)


@lru_cache(maxsize=256)
def _issuer_names(der: bytes) -> tuple[str, str]:
    """(readable, normalised) forms of an issuer name; every value of a file names the same one or two."""
    name = asn1_x509.Name.load(der)
    return name.human_friendly, name.hashable


def _rid(rid: Any) -> Recipient:
    chosen = rid.chosen
    if rid.name == "issuer_and_serial_number":
        readable, normalised = _issuer_names(chosen["issuer"].dump())
        return Recipient("issuer_serial", readable, normalised, int(chosen["serial_number"].native))
    if rid.name == "r_key_id":
        chosen = chosen["subject_key_identifier"]
    return Recipient("subject_key_identifier", subject_key_identifier=bytes(chosen.native).hex().upper())


def parse_value(text: str) -> tuple[tuple[Recipient, ...], str]:
    """The recipients and content algorithm of a base64 CMS EnvelopedData value; ValueError names the problem."""
    if len(text) > MAX_VALUE_CHARS:
        raise ValueError(f"value is longer than {MAX_VALUE_CHARS} characters")
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError("not base64") from err
    if not der:
        raise ValueError("empty value")
    try:
        info = cms.ContentInfo.load(der, strict=True)
        content_type = info["content_type"].native
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"not CMS EnvelopedData: {message}") from err
    if content_type != "enveloped_data":
        raise ValueError(f"CMS {content_type}, expected enveloped_data")
    try:
        envelope = info["content"]
        recipients = tuple(r for item in envelope["recipient_infos"] for r in _recipient(item))
        algorithm = str(envelope["encrypted_content_info"]["content_encryption_algorithm"]["algorithm"].native)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"not CMS EnvelopedData: {message}") from err
    if not recipients:
        raise ValueError("CMS EnvelopedData without recipients")
    return recipients, algorithm


def _leaves(document: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, document


def parse_credentials(document: Any, name: str) -> tuple[CredentialsFacts, list[Problem]]:
    """Read every value of a parsed Credentials.json; values that cannot be read become problems."""
    if not isinstance(document, dict):
        raise CollectorError(name, Reason.PARSE_ERROR, "document: expected a JSON object")
    values, problems = [], []
    for key, value in _leaves(document):
        if not isinstance(value, str):
            kind = "an array" if isinstance(value, list) else type(value).__name__
            problems.append(Problem(Reason.PARSE_ERROR, f"{name}: {key or '(top level)'}: {kind}, expected a string"))
            continue
        try:
            recipients, algorithm = parse_value(value)
        except ValueError as err:
            problems.append(Problem(Reason.PARSE_ERROR, f"{name}: {key}: {err}"))
            continue
        values.append(CredentialValue(key, recipients, algorithm))
    if not values and problems:
        raise CollectorError(
            name, Reason.PARSE_ERROR, f"no readable encrypted value; first problem: {problems[0].message}"
        )
    return CredentialsFacts(name, tuple(values)), problems


def _serial_text(serial: int) -> str:
    """A serial number as `Certificate.serial` writes it (upper-case hex of even length)."""
    text = format(abs(serial), "X")
    return text if len(text) % 2 == 0 else "0" + text


@lru_cache(maxsize=4096)
def _issuer_key(der: bytes) -> Any:
    """The issuer of a certificate as asn1crypto compares names (the CMS recipient's form), parsed once."""
    try:
        return asn1_x509.Certificate.load(der).issuer.hashable
    except (ValueError, TypeError):
        return None


class RecipientIndex:
    """Certificates by issuer and serial number and by subject key identifier.

    Building it costs one dictionary entry per certificate (the serial and key identifier come
    from the already parsed certificate); the issuer, whose comparable form is expensive (LDAP
    string preparation of every attribute), is computed only for the few certificates whose
    serial a recipient names, and cached. At 50,000 certificates parsing every issuer cost
    seconds per evaluation, three times over.
    """

    def __init__(self, certificates: Iterable[Certificate]) -> None:
        self._by_serial: dict[str, list[Certificate]] = {}
        self._by_key_id: dict[str, str] = {}
        seen: set[str] = set()
        for cert in certificates:
            if cert.thumbprint in seen:
                continue
            seen.add(cert.thumbprint)
            try:
                serial = cert.serial
            except ValueError:
                continue
            self._by_serial.setdefault(serial, []).append(cert)
            if cert.subject_key_identifier:
                self._by_key_id.setdefault(cert.subject_key_identifier, cert.thumbprint)

    def thumbprint(self, recipient: Recipient) -> str:
        """The thumbprint of the certificate a recipient names, or '' when none is known."""
        if recipient.kind == "issuer_serial" and recipient.serial is not None:
            for cert in self._by_serial.get(_serial_text(recipient.serial), ()):
                if _issuer_key(cert.der) == recipient.issuer_key:
                    return cert.thumbprint
            return ""
        if recipient.kind == "subject_key_identifier":
            return self._by_key_id.get(recipient.subject_key_identifier, "")
        return ""


# The index of the latest snapshot (one slot): rules, steps and metrics of one evaluation share it.
_LAST_INDEX: list[tuple[weakref.ref[Snapshot], RecipientIndex]] = []
_LAST_INDEX_LOCK = threading.Lock()


def recipient_index(snapshot: Snapshot) -> RecipientIndex:
    """The recipient index of a snapshot's certificates, built once however many rules and metrics ask."""
    with _LAST_INDEX_LOCK:
        if _LAST_INDEX and _LAST_INDEX[0][0]() is snapshot:
            return _LAST_INDEX[0][1]
    index = RecipientIndex(o.certificate for o in snapshot.certificates())
    with _LAST_INDEX_LOCK:
        _LAST_INDEX[:] = [(weakref.ref(snapshot), index)]
    return index


def encipherment_generations(references: Iterable[CertReference]) -> dict[str, Generation]:
    """Thumbprint -> generation of the encipherment certificates the configuration names."""
    out: dict[str, Generation] = {}
    for ref in references:
        # A thumbprint named as new anywhere is the new one (the ConfigTemplate pair decides).
        if ref.role == ENCIPHERMENT_ROLE and ref.thumbprint and out.get(ref.thumbprint) is not Generation.NEW:
            out[ref.thumbprint] = ref.generation
    return out


@dataclass(frozen=True, slots=True)
class Encryption:
    """One recipient of one value: the certificate's thumbprint ('' when unknown) and its generation."""

    key: str
    thumbprint: str
    generation: str
    recipient: Recipient


def value_encryptions(
    facts: CredentialsFacts, index: RecipientIndex, generations: Mapping[str, Generation]
) -> list[Encryption]:
    """For every value, which certificate(s) it is encrypted to: new, old, or unknown."""
    out = []
    for value in facts.values:
        for recipient in value.recipients:
            thumbprint = index.thumbprint(recipient)
            generation = generations.get(thumbprint)
            out.append(Encryption(value.key, thumbprint, str(generation) if generation else UNKNOWN, recipient))
    return out


def keys_not_on(encryptions: Sequence[Encryption], thumbprint: str) -> list[str]:
    """Keys none of whose recipients is the given certificate (what a rotation must still re-encrypt)."""
    keys = dict.fromkeys(e.key for e in encryptions)
    on_target = {e.key for e in encryptions if e.thumbprint == thumbprint}
    return [key for key in keys if key not in on_target]


def credentials_rotated_evidence(snapshot: Snapshot, references: Iterable[CertReference]) -> Evidence:
    """Is every Credentials.json value encrypted to the new encipherment certificate?"""
    found = snapshot.facts(SOURCE, CredentialsFacts)
    if not found:
        return Evidence(None, "Credentials.json has not been read (sources.credentials)")
    generations = encipherment_generations(references)
    new = sorted(t for t, g in generations.items() if g is Generation.NEW)
    if not new:
        return Evidence(None, "no configuration names the encipherment certificate")
    index = recipient_index(snapshot)
    pending: list[str] = []
    for _, facts in found:
        encryptions = value_encryptions(facts, index, generations)
        on_new = {e.key for e in encryptions if e.generation == Generation.NEW}
        pending += [v.key for v in facts.values if v.key not in on_new]
    if pending:
        return Evidence(False, f"not encrypted to {', '.join(new)}: {', '.join(pending)}")
    return Evidence(True, f"every value is encrypted to {', '.join(new)}")


def load_credentials(path: Path) -> tuple[CredentialsFacts, list[Problem]]:
    """Read and interpret Credentials.json."""
    return parse_credentials(parse_json(read_bytes(path), str(path)), str(path))


class CredentialsCollector(FileCollector):
    """Credentials.json: the recipients of its encrypted values."""

    name = SOURCE

    def collect(self, target: str, deadline: Deadline) -> Observation:
        """Read the file."""
        facts, problems = load_credentials(self.path)
        return Observation(facts=facts, problems=tuple(problems))
