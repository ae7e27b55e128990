"""Every SQL text certmon runs is T-SQL that sqlfluff's tsql dialect parses, with `?` parameters only."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest
from sqlfluff.core import FluffConfig, Linter

import collectors
import remediations
from collectors.sql.connection import Statement
from collectors.sql.dialect import Dialect
from simulator.axdb import LAB_PROBE_SQL


def all_statements() -> dict[str, Statement]:
    """Every module-level Statement of collectors/ and remediations/, found by importing them."""
    found: dict[str, Statement] = {}
    for package in (collectors, remediations):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            loaded = importlib.import_module(module.name)
            for attribute, value in vars(loaded).items():
                if isinstance(value, Statement):
                    found[f"{module.name}.{attribute}"] = value
    return found


STATEMENTS = all_statements()
LINTER = Linter(
    config=FluffConfig(
        configs={
            "core": {"dialect": "tsql", "templater": "placeholder"},
            "templater": {"placeholder": {"param_style": "question_mark"}},
        }
    )
)


def parse_errors(sql: str) -> list[str]:
    parsed = LINTER.parse_string(sql)
    errors = [v.desc() for v in parsed.violations]
    if parsed.tree is None:
        errors.append("no parse tree")
    elif any(segment.is_type("unparsable") for segment in parsed.tree.recursive_crawl_all()):
        errors.append("unparsable section")
    return errors


def test_the_search_finds_the_statements() -> None:
    names = {name.rsplit(".", 1)[-1] for name in STATEMENTS}
    assert {"FLIGHT_ROWS", "CONFIG_ROWS", "JOB_ROWS", "LAST_FULL_BACKUP", "CONFIG_JSON_LOCATIONS"} <= names


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_statement_is_tsql(name: str) -> None:
    sql = STATEMENTS[name].render(Dialect.TSQL)
    assert parse_errors(sql) == [], sql


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_values_are_bound_never_written_into_the_text(name: str) -> None:
    sql = STATEMENTS[name].render(Dialect.TSQL)
    # No string or number literals stand in for data: every value is a `?` parameter. Counting
    # (THEN 1 ELSE 0) and existence tests (SELECT 1) are structure, not data.
    structure = sql.replace("THEN 1 ELSE 0", "").replace("SELECT 1 ", "")
    assert not re.search(r"'[^']*'", structure), sql
    assert not re.search(r"(?<![\w.])\d+(?![\w.])", structure), sql


def test_the_three_part_name_is_only_in_tsql() -> None:
    statement = next(s for s in STATEMENTS.values() if "{backupset}" in s.text)
    assert "msdb.dbo.backupset" in statement.render(Dialect.TSQL)
    assert "msdb.backupset" in statement.render(Dialect.POSTGRESQL)
    assert "msdb" not in statement.render(Dialect.SQLITE)


def test_a_parse_error_is_caught() -> None:
    assert parse_errors("SELECT remaining FROM x WHERE")


def test_the_lab_probe_is_tsql() -> None:
    assert parse_errors(LAB_PROBE_SQL.format(old="A" * 40)) == []
