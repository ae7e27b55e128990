"""Column values as the backends return them: pyodbc gives datetimes and Decimals, sqlite3 gives text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

# AX stores "no date" as 1900-01-01 00:00:00 in its UTC datetime columns.
AX_NULL_DATE = datetime(1900, 1, 2, tzinfo=UTC)
# msdb.dbo.backupset.time_zone: 15-minute intervals east of UTC; 127 means unknown.
TIME_ZONE_UNKNOWN = 127


def as_utc(value: Any) -> datetime | None:
    """An AX UTC datetime column as an aware datetime; None for NULL and AX's empty date."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        moment = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    elif isinstance(value, datetime):
        moment = value
    else:
        raise ValueError(f"expected a date and time, got {type(value).__name__}")
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return None if moment < AX_NULL_DATE else moment


def as_server_local(value: Any, time_zone: Any) -> datetime | None:
    """A backupset date (server local time) converted with its time_zone column; unknown zones read as UTC."""
    moment = as_utc(value)
    if moment is None:
        return None
    try:
        quarters = int(time_zone)
    except (TypeError, ValueError):
        return moment
    if quarters == TIME_ZONE_UNKNOWN or not -48 <= quarters <= 56:
        return moment
    return moment - timedelta(minutes=15 * quarters)


def as_int(value: Any) -> int:
    """An integer column (pyodbc may return Decimal, sqlite3 int or text)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | Decimal | float):
        return int(value)
    return int(str(value).strip())


def as_number(value: Any) -> float | None:
    """A numeric column as float, None for NULL; ValueError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, int | float | Decimal):
        return float(value)
    return float(str(value).strip())


def as_text(value: Any) -> str:
    """A text column; NULL is ''."""
    return "" if value is None else str(value)
