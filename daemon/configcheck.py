"""Checks of a loaded configuration that pydantic cannot make: files named by *_file settings, CERTMON_* typos.

Every message names the setting (dotted, as in the YAML file) and, for a typo, the setting
it probably meant.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ENV_PREFIX = "CERTMON_"
#: CERTMON_* variables that are not settings.
NOT_SETTINGS = frozenset({"CERTMON_CONFIG"})


def did_you_mean(word: str, choices: list[str]) -> str:
    """' (did you mean X?)' for a near miss, else ''."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The settings model that holds the field at `loc` (dotted path parts), or None."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _model_of(field.annotation)
        if current is None:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):  # Optional[X], dict[str, X], list[X]
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def unknown_key_hint(model: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    """The did-you-mean for an unknown key at `loc` (its last part is the key)."""
    parent = model_at(model, loc[:-1]) if len(loc) > 1 else model
    if parent is None:
        return ""
    return did_you_mean(str(loc[-1]), list(parent.model_fields))


def unknown_environment(model: type[BaseModel], environ: Mapping[str, str] | None = None) -> list[str]:
    """CERTMON_* variables that name no setting, each with its near miss when there is one."""
    environ = os.environ if environ is None else environ
    out = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX) or name.upper() in NOT_SETTINGS:
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        current: Any = model
        for index, part in enumerate(parts):
            fields = current.model_fields if isinstance(current, type) and issubclass(current, BaseModel) else None
            if fields is None:
                break  # a dict or list setting: its keys are data
            if part not in fields:
                known = [ENV_PREFIX + "__".join([*parts[:index], f]).upper() for f in fields]
                out.append(f"{name}{did_you_mean(name.upper(), known)}")
                break
            current = _model_of(fields[part].annotation) or fields[part].annotation
    return out


def unreadable_files(settings: BaseModel, prefix: str = "") -> Iterator[str]:
    """Every *_file setting of an enabled section whose file cannot be opened, as `setting: path: reason`."""
    if getattr(settings, "enabled", True) is False:
        return
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        where = f"{prefix}{name}"
        if isinstance(value, Path) and name.endswith("_file"):
            reason = _unreadable(value)
            if reason:
                yield f"{where}: {value}: {reason}"
        elif isinstance(value, BaseModel):
            yield from unreadable_files(value, f"{where}.")
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    yield from unreadable_files(item, f"{where}.{key}.")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from unreadable_files(item, f"{where}[{index}].")


def _unreadable(path: Path) -> str:
    try:
        with open(path, "rb"):
            return ""
    except OSError as err:
        return err.strerror or type(err).__name__
