"""The /metrics exposition rendered once per evaluation: text and OpenMetrics, plain and gzip.

Every certmon family (certificates, findings, sources, rotation steps, build info, the time of
the evaluation) changes only when an evaluation is published, and the daemon's registry holds
nothing else (no process_* or platform collectors, which would change between scrapes). So the
scheduler thread renders the four bodies right after each evaluation and a scrape serves bytes:
no formatting and no compression on the HTTP threads, whatever the number of scrapers.

The text and OpenMetrics formats differ only in their HELP/TYPE lines and the closing `# EOF`;
gauge and counter sample lines are the same bytes, so they are formatted once. A family with
anything else (timestamps, exemplars, other types) is rendered by prometheus_client itself.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.exposition import generate_latest as text_generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_generate_latest
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from daemon.compactmetrics import CompactSamples

TEXT_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Level 6: rendered once per evaluation, served many times, so smaller bodies are worth the extra work.
GZIP_LEVEL = 6
_SIMPLE_TYPES = ("gauge", "counter")


@dataclass(frozen=True)
class Exposition:
    """The four bodies of one evaluation's /metrics."""

    text: bytes
    text_gzip: bytes
    openmetrics: bytes
    openmetrics_gzip: bytes

    def body(self, accept: str, accept_encoding: str) -> tuple[bytes, str, bool]:
        """(body, content type, gzipped) for a scraper's Accept and Accept-Encoding headers."""
        gzipped = _accepts_gzip(accept_encoding)
        if _wants_openmetrics(accept):
            return (self.openmetrics_gzip if gzipped else self.openmetrics), OPENMETRICS_CONTENT_TYPE, gzipped
        return (self.text_gzip if gzipped else self.text), TEXT_CONTENT_TYPE, gzipped


def _wants_openmetrics(accept: str) -> bool:
    # Negotiation as prometheus_client's choose_encoder: the first listed type it can serve wins,
    # so `text/plain;version=1.0.0,application/openmetrics-text` gets text. Every OpenMetrics
    # request is served OpenMetrics 1.0.0 and every text request the 0.0.4 format, which are
    # what Prometheus asks for first and accepts (the Content-Type says which was served).
    for part in accept.split(","):
        kind = part.split(";", 1)[0].strip().lower()
        if kind == "application/openmetrics-text":
            return True
        if kind == "text/plain":
            return False
    return False


def _accepts_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.split(","):
        coding, _, params = part.partition(";")
        if coding.strip().lower() == "gzip":
            name, _, quality = params.partition("=")
            if name.strip().lower() != "q":
                return True
            try:
                return float(quality) > 0
            except ValueError:
                return False
    return False


class _Families:
    """A collector over a fixed list, for prometheus_client's renderers."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Sequence[Metric]:
        return self._families


def _escape_help_text(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_help_openmetrics(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_label_value(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _value_text(value: float) -> str:
    # floatToGoString, with the common case (finite, short) inlined.
    if math.isfinite(value):
        text = repr(float(value))
        if text.find(".") <= 6 or value <= 0:
            return text
    return floatToGoString(value)


def _simple(family: Metric) -> bool:
    if family.type not in _SIMPLE_TYPES or family.unit:
        return False
    samples = family.samples
    # Compact rows (daemon.compactmetrics) carry neither timestamps nor exemplars: check the others only.
    for sample in samples.ordinary if isinstance(samples, CompactSamples) else samples:
        if sample.timestamp is not None or sample.exemplar is not None or sample.native_histogram is not None:
            return False
    return True


def _compact_lines(samples: CompactSamples, out: list[str]) -> None:
    """Lines of compact rows straight from their label values: no Sample or label dictionary per series."""
    names = samples.labelnames
    order = sorted(range(len(names)), key=lambda i: names[i])
    heads = [f'{names[i]}="' for i in order]
    if not names:
        out.extend(f"{samples.name} {_value_text(value)}\n" for _values, value in samples.rows)
        return
    prefix = samples.name + "{"
    for values, value in samples.rows:
        inner = '",'.join([head + _escape_label_value(values[i]) for head, i in zip(heads, order, strict=True)])
        out.append(f'{prefix}{inner}"}} {_value_text(value)}\n')


def _sample_lines(family: Metric, out: list[str]) -> None:
    orders: dict[tuple[str, ...], list[str]] = {}
    samples = family.samples
    if isinstance(samples, CompactSamples):
        # The usual samples first, then the rows: the order the families list them in.
        _ordinary_lines(samples.ordinary, out, orders)
        _compact_lines(samples, out)
        return
    _ordinary_lines(samples, out, orders)


def _ordinary_lines(samples: Iterable[Sample], out: list[str], orders: dict[tuple[str, ...], list[str]]) -> None:
    for sample in samples:
        labels = sample.labels
        if labels:
            names = tuple(labels)
            order = orders.get(names)
            if order is None:
                order = orders[names] = sorted(names)
            inner = ",".join([f'{name}="{_escape_label_value(labels[name])}"' for name in order])
            out.append(f"{sample.name}{{{inner}}} {_value_text(sample.value)}\n")
        else:
            out.append(f"{sample.name} {_value_text(sample.value)}\n")


def _has_created(samples: Iterable[Sample], name: str) -> bool:
    if isinstance(samples, CompactSamples):
        # Compact rows all carry the family's own sample name.
        return samples.name == name + "_created" or any(s.name == name + "_created" for s in samples.ordinary)
    return any(s.name == name + "_created" for s in samples)


def render_exposition(families: Sequence[Metric]) -> Exposition:
    """Render the families in both formats, each plain and gzipped."""
    # Each family's sample lines are encoded once and the bytes shared by both bodies: at
    # 150,000 series (50,000 certificates in one store) keeping str copies of both bodies
    # beside their encodings cost about 75 MiB of peak memory per evaluation.
    text: list[bytes] = []
    openmetrics: list[bytes] = []
    for family in families:
        if not _simple(family) or _has_created(family.samples, family.name):
            text.append(text_generate_latest(_Families([family])))
            rendered = openmetrics_generate_latest(_Families([family]))
            openmetrics.append(rendered.removesuffix(b"# EOF\n"))
            continue
        name = family.name
        text_name = name + "_total" if family.type == "counter" else name
        text.append(
            f"# HELP {text_name} {_escape_help_text(family.documentation)}\n# TYPE {text_name} {family.type}\n".encode()
        )
        openmetrics.append(
            f"# HELP {name} {_escape_help_openmetrics(family.documentation)}\n# TYPE {name} {family.type}\n".encode()
        )
        lines: list[str] = []
        _sample_lines(family, lines)
        block = "".join(lines).encode("utf-8")
        del lines
        text.append(block)
        openmetrics.append(block)
    openmetrics.append(b"# EOF\n")
    text_body = b"".join(text)
    openmetrics_body = b"".join(openmetrics)
    del text, openmetrics
    return Exposition(
        text_body,
        gzip.compress(text_body, compresslevel=GZIP_LEVEL, mtime=0),
        openmetrics_body,
        gzip.compress(openmetrics_body, compresslevel=GZIP_LEVEL, mtime=0),
    )
