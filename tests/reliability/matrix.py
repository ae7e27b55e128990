"""The fault matrix's results, shared by the tests that fill it and the hook that prints it."""

from __future__ import annotations

from tests.reliability.rigs import FAULTS, NOT_APPLICABLE, SOURCES

#: (source, fault class) -> the cell's text: "ok <reason>" or "FAILED"
MATRIX: dict[tuple[str, str], str] = {}


def matrix_table() -> list[str]:
    """The fault matrix as text lines: one row per source, one column per fault class."""
    width = 22
    lines = ["source        " + "".join(f"{fault:<{width}}" for fault in FAULTS)]
    notes = []
    for source in SOURCES:
        cells = []
        for fault in FAULTS:
            if (source, fault) in NOT_APPLICABLE:
                notes.append(f"  n/a {source} x {fault}: {NOT_APPLICABLE[(source, fault)]}")
                cells.append("n/a")
            else:
                cells.append(MATRIX.get((source, fault), "not run"))
        lines.append(f"{source:<14}" + "".join(f"{cell:<{width}}" for cell in cells))
    return [*lines, *notes]
