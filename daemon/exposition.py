"""The /metrics exposition rendered once per evaluation: text and OpenMetrics, plain and gzip.

Every certmon family (certificates, findings, sources, rotation steps, build info, the time of
the evaluation) changes only when an evaluation is published, and the daemon's registry holds
nothing else (no process_* or platform collectors, which would change between scrapes). So the
scheduler thread renders the four bodies right after each evaluation and a scrape serves bytes:
no formatting and no compression on the HTTP threads, whatever the number of scrapers.

The text and OpenMetrics formats differ only in their HELP/TYPE lines and the closing `# EOF`;
gauge and counter sample lines are the same bytes, so they are formatted once. A family with
anything else (timestamps, exemplars, other types) is rendered by prometheus_client itself.

Memory (150,000 series, 50,000 certificates in one store): the bodies are kept as parts
(`daemon.bodyparts`), never joined. A large family's sample lines are one set of parts held by
both plain bodies, and are compressed once into a raw deflate segment held by both gzip bodies:
each gzip body runs its own compressor over what is its own (HELP and TYPE lines, small
families) and ends it with a full flush before a shared segment, so the segment, compressed from
an empty window, continues the stream validly; the body's trailer carries the CRC-32 of its own
plain bytes. Lines are formatted and encoded a few thousand at a time, so no family is ever one
large string. This took the four bodies from 78 to 39 MiB and the rendering's transient peak
from about 40 MiB to a few.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice

from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.exposition import generate_latest as text_generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_generate_latest
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from daemon.bodyparts import COALESCE_BELOW, Parts, PartsBuilder, unique_size
from daemon.compactmetrics import CompactSamples

TEXT_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Level 6: rendered once per evaluation, served many times, so smaller bodies are worth the extra work.
GZIP_LEVEL = 6
_SIMPLE_TYPES = ("gauge", "counter")
# Sample lines formatted and encoded at a time (about 0.5 MiB of text at 250 bytes a line).
LINES_PER_PART = 2048
# A gzip member header: deflate, no name, mtime 0, no extra flags, OS unknown.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


@dataclass(frozen=True)
class Exposition:
    """The four bodies of one evaluation's /metrics, as parts that share their bytes."""

    text_parts: Parts
    text_gzip_parts: Parts
    openmetrics_parts: Parts
    openmetrics_gzip_parts: Parts
    #: each large family's sample-line parts and their deflate segment, by family name (for the next rendering)
    shared: Mapping[str, tuple[tuple[bytes, ...], bytes]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def text(self) -> bytes:
        """The text body joined (a copy: for tests and tools)."""
        return bytes(self.text_parts)

    @property
    def text_gzip(self) -> bytes:
        """The gzipped text body joined (a copy)."""
        return bytes(self.text_gzip_parts)

    @property
    def openmetrics(self) -> bytes:
        """The OpenMetrics body joined (a copy)."""
        return bytes(self.openmetrics_parts)

    @property
    def openmetrics_gzip(self) -> bytes:
        """The gzipped OpenMetrics body joined (a copy)."""
        return bytes(self.openmetrics_gzip_parts)

    @property
    def nbytes(self) -> int:
        """Bytes the four bodies hold, shared parts counted once."""
        return unique_size(self.text_parts, self.text_gzip_parts, self.openmetrics_parts, self.openmetrics_gzip_parts)

    def body(self, accept: str, accept_encoding: str) -> tuple[Parts, str, bool]:
        """(body, content type, gzipped) for a scraper's Accept and Accept-Encoding headers."""
        gzipped = _accepts_gzip(accept_encoding)
        if _wants_openmetrics(accept):
            parts = self.openmetrics_gzip_parts if gzipped else self.openmetrics_parts
            return parts, OPENMETRICS_CONTENT_TYPE, gzipped
        return (self.text_gzip_parts if gzipped else self.text_parts), TEXT_CONTENT_TYPE, gzipped


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


def _compact_lines(samples: CompactSamples) -> Iterator[str]:
    """Lines of compact rows straight from their label values: no Sample or label dictionary per series."""
    names = samples.labelnames
    order = sorted(range(len(names)), key=lambda i: names[i])
    heads = [f'{names[i]}="' for i in order]
    if not names:
        for _values, value in samples.rows:
            yield f"{samples.name} {_value_text(value)}\n"
        return
    prefix = samples.name + "{"
    for values, value in samples.rows:
        inner = '",'.join([head + _escape_label_value(values[i]) for head, i in zip(heads, order, strict=True)])
        yield f'{prefix}{inner}"}} {_value_text(value)}\n'


def _sample_lines(family: Metric) -> Iterator[str]:
    samples = family.samples
    if isinstance(samples, CompactSamples):
        # The usual samples first, then the rows: the order the families list them in.
        yield from _ordinary_lines(samples.ordinary)
        yield from _compact_lines(samples)
        return
    yield from _ordinary_lines(samples)


def _ordinary_lines(samples: Iterable[Sample]) -> Iterator[str]:
    orders: dict[tuple[str, ...], list[str]] = {}
    for sample in samples:
        labels = sample.labels
        if labels:
            names = tuple(labels)
            order = orders.get(names)
            if order is None:
                order = orders[names] = sorted(names)
            inner = ",".join([f'{name}="{_escape_label_value(labels[name])}"' for name in order])
            yield f"{sample.name}{{{inner}}} {_value_text(sample.value)}\n"
        else:
            yield f"{sample.name} {_value_text(sample.value)}\n"


def _encoded_lines(family: Metric) -> Iterator[bytes]:
    """The family's sample lines, encoded LINES_PER_PART at a time."""
    lines = _sample_lines(family)
    while batch := list(islice(lines, LINES_PER_PART)):
        yield "".join(batch).encode("utf-8")


def _has_created(samples: Iterable[Sample], name: str) -> bool:
    if isinstance(samples, CompactSamples):
        # Compact rows all carry the family's own sample name.
        return samples.name == name + "_created" or any(s.name == name + "_created" for s in samples.ordinary)
    return any(s.name == name + "_created" for s in samples)


class _Body:
    """One body being rendered: its plain parts and its gzip member, from its own and shared pieces."""

    def __init__(self) -> None:
        self._plain = PartsBuilder()
        self._gzip = PartsBuilder()
        self._gzip.add(_GZIP_HEADER)
        self._compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc = 0
        self._size = 0

    def _plain_part(self, data: bytes) -> None:
        self._plain.add(data)
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)

    def write(self, data: bytes) -> None:
        """Bytes of this body only, compressed by its own compressor."""
        self._plain_part(data)
        compressed = self._compressor.compress(data)
        if compressed:
            self._gzip.add(compressed)

    def share(self, chunks: Sequence[bytes], segment: bytes) -> None:
        """Parts another body holds too, with their deflate segment (see _segment)."""
        # A full flush ends this body's compressed data on a byte boundary and forgets its window: what
        # follows may be any independently compressed segment, and this compressor can carry on after it.
        self._gzip.add(self._compressor.flush(zlib.Z_FULL_FLUSH))
        for chunk in chunks:
            self._plain_part(chunk)
        self._gzip.add(segment)

    def finish(self) -> tuple[Parts, Parts]:
        """(plain, gzip)."""
        self._gzip.add(self._compressor.flush(zlib.Z_FINISH))
        self._gzip.add(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        return self._plain.build(), self._gzip.build()


def _segment(chunks: Sequence[bytes]) -> bytes:
    """The chunks as raw deflate from an empty window, ending on a byte boundary and not final."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [compressor.compress(chunk) for chunk in chunks]
    out.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(out)


def _reused(encoded: Iterable[bytes], before: Sequence[bytes]) -> list[bytes]:
    """The encoded parts, each replaced by the previous evaluation's part at its place when the bytes are equal."""
    out = []
    for index, chunk in enumerate(encoded):
        old = before[index] if index < len(before) else None
        out.append(old if old is not None and old == chunk else chunk)
    return out


def render_exposition(families: Sequence[Metric], previous: Exposition | None = None) -> Exposition:
    """Render the families in both formats, each plain and gzipped.

    `previous`: the exposition being served until this one replaces it. A large family's parts
    equal to its parts there are that exposition's bytes, not a second copy, and when all of them
    are, its compressed segment is reused too: between two evaluations most certificate series
    do not change, so the two expositions alive during a publish share most of their memory and
    the unchanged families are not compressed again.
    """
    text = _Body()
    openmetrics = _Body()
    shared: dict[str, tuple[tuple[bytes, ...], bytes]] = {}
    earlier = previous.shared if previous is not None else {}
    for family in families:
        if not _simple(family) or _has_created(family.samples, family.name):
            text.write(text_generate_latest(_Families([family])))
            rendered = openmetrics_generate_latest(_Families([family]))
            openmetrics.write(rendered.removesuffix(b"# EOF\n"))
            continue
        name = family.name
        text_name = name + "_total" if family.type == "counter" else name
        text.write(
            f"# HELP {text_name} {_escape_help_text(family.documentation)}\n# TYPE {text_name} {family.type}\n".encode()
        )
        openmetrics.write(
            f"# HELP {name} {_escape_help_openmetrics(family.documentation)}\n# TYPE {name} {family.type}\n".encode()
        )
        before, before_segment = earlier.get(name, ((), b""))
        chunks = _reused(_encoded_lines(family), before)
        if sum(len(c) for c in chunks) < COALESCE_BELOW:
            for chunk in chunks:
                text.write(chunk)
                openmetrics.write(chunk)
            continue
        same = len(chunks) == len(before) and all(new is old for new, old in zip(chunks, before, strict=True))
        segment = before_segment if same else _segment(chunks)
        shared[name] = (tuple(chunks), segment)
        text.share(chunks, segment)
        openmetrics.share(chunks, segment)
    openmetrics.write(b"# EOF\n")
    text_plain, text_gzip = text.finish()
    openmetrics_plain, openmetrics_gzip = openmetrics.finish()
    return Exposition(text_plain, text_gzip, openmetrics_plain, openmetrics_gzip, shared)
