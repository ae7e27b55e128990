"""enable-reencryption: set the re-encryption flight and config key in AXDB, in one transaction.

Microsoft's instructions for the data encryption certificate: after rotation, the batch job
"Encrypted data rotation system job" re-encrypts data with the new certificate, two hours a
day, once `SYSFLIGHTING` enables `EnableEncryptedDataCrawlerRotationTask` and `SECURITYCONFIG`
sets `EnableEncryptedDataRotation` to True, and the AOS nodes have restarted. As the runbook's
SQL does, every existing row with the flight name is updated whatever its FLIGHTSERVICEID, and a
row (FLIGHTSERVICEID 0) is inserted only when none exists (the insert guarded by NOT EXISTS on the
name, so a second apply, or a concurrent one, never adds a second row). Both statements commit together or not at all;
a compensation that restores the rows as they were is registered before the commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from collectors.base import Deadline
from collectors.errors import CollectorError
from collectors.sql import AXDB, Database, DatabaseSpec, connect
from collectors.sql import queries as q
from collectors.sql.axdb import read_config_values, read_flight
from collectors.sql.connection import Statement
from collectors.sql.reencryption import reencryption_complete, template_rotation
from remediations.base import Check, Remediation, RemediationContext, RemediationError, VerificationError
from remediations.checkpoint import Checkpoint
from remediations.plan import Plan, SqlChange, SqlStatement

#: ctx.options key: the configured databases, {"AXDB": DatabaseSpec, ...}
DATABASES_OPTION = "databases"
SQL_SECONDS = 60.0

PARTITION_RECID = Statement("PARTITIONS initial", "SELECT P.RECID FROM PARTITIONS AS P WHERE P.PARTITIONKEY = ?")
UPDATE_FLIGHT = Statement(
    "enable flight",
    "UPDATE SYSFLIGHTING SET ENABLED = ? WHERE FLIGHTNAME = ? AND PARTITION = ?",
)
INSERT_FLIGHT = Statement(
    "insert flight",
    "INSERT INTO SYSFLIGHTING (FLIGHTNAME, ENABLED, FLIGHTSERVICEID, PARTITION)"
    " SELECT ?, ?, ?, P.RECID FROM PARTITIONS AS P WHERE P.PARTITIONKEY = ? AND NOT EXISTS"
    " (SELECT 1 FROM SYSFLIGHTING AS F WHERE F.FLIGHTNAME = ? AND F.PARTITION = P.RECID)",
)
RESTORE_FLIGHT = Statement(
    "restore flight",
    "UPDATE SYSFLIGHTING SET ENABLED = ?"
    " WHERE FLIGHTNAME = ? AND FLIGHTSERVICEID = ? AND PARTITION = ? AND ENABLED = ?",
)
DELETE_FLIGHT = Statement(
    "remove inserted flight",
    "DELETE FROM SYSFLIGHTING WHERE FLIGHTNAME = ? AND FLIGHTSERVICEID = ? AND PARTITION = ?",
)
UPDATE_KEY = Statement("set config key", "UPDATE SECURITYCONFIG SET VALUE = ? WHERE KEY_ = ?")
INSERT_KEY = Statement(
    "insert config key",
    "INSERT INTO SECURITYCONFIG (KEY_, VALUE) SELECT ?, ?"
    " WHERE NOT EXISTS (SELECT 1 FROM SECURITYCONFIG AS S WHERE S.KEY_ = ?)",
)
RESTORE_KEY = Statement("restore config key", "UPDATE SECURITYCONFIG SET VALUE = ? WHERE KEY_ = ? AND VALUE = ?")
DELETE_KEY = Statement("remove inserted config key", "DELETE FROM SECURITYCONFIG WHERE KEY_ = ? AND VALUE = ?")
# The plan names statements by these; apply looks them up, so only known SQL ever runs.
STATEMENTS = {s.text: s for s in (UPDATE_FLIGHT, INSERT_FLIGHT, UPDATE_KEY, INSERT_KEY)}


def axdb_spec(ctx: RemediationContext) -> DatabaseSpec:
    """The configured AXDB connection."""
    databases: Mapping[str, DatabaseSpec] = ctx.options.get(DATABASES_OPTION) or {}
    spec = databases.get(AXDB)
    if spec is None:
        raise RemediationError("sources.sql.axdb is not configured")
    return spec


def _connect(spec: DatabaseSpec, *, write: bool) -> Database:
    try:
        return connect(spec, Deadline.after(SQL_SECONDS), read_only=not write, autocommit=not write)
    except CollectorError as err:
        raise RemediationError(f"cannot open {err}") from err


def _read(spec: DatabaseSpec) -> tuple[int, list[tuple[bool, int]], list[str]]:
    """The initial partition's RECID, the flight's rows and the key's values, as they are now."""
    with _connect(spec, write=False) as db:
        try:
            partitions = db.query(PARTITION_RECID, (q.PARTITION_KEY,))
            flight = [(row.enabled, row.service_id) for row in read_flight(db)]
            values = list(read_config_values(db))
        except CollectorError as err:
            raise RemediationError(f"cannot read {err}") from err
    if len(partitions) != 1:
        raise RemediationError(f"{spec.label}: PARTITIONS has {len(partitions)} rows keyed 'initial', expected one")
    return int(partitions[0][0]), flight, values


class EnableReencryption(Remediation):
    """Turn on the flight and the config key the re-encryption batch job needs."""

    name = "enable-reencryption"
    description = (
        "Enable the EnableEncryptedDataCrawlerRotationTask flight and the EnableEncryptedDataRotation key in AXDB."
    )
    step = "reencryption-enabled"
    sources = ("sql",)

    def preconditions(self, ctx: RemediationContext) -> list[Check]:
        """AXDB configured and read, a data encryption rotation under way, re-encryption not finished."""
        try:
            spec = axdb_spec(ctx)
            checks = [Check("AXDB configured", True, spec.label)]
        except RemediationError as err:
            return [Check("AXDB configured", False, str(err))]
        results = [r for r in ctx.snapshot.of_source("sql") if r.target == AXDB]
        failing = "; ".join(f"{r.health.reason}: {r.health.message}" for r in results if not r.health.ok)
        read = bool(results) and not failing
        checks.append(Check("AXDB collected", read, failing or ("read" if results else "the sql source did not run")))
        rotation = template_rotation(ctx.snapshot, "DataEncryption")
        checks.append(
            Check(
                "data encryption certificate rotated",
                rotation is not None,
                f"{', '.join(rotation.old)} -> {', '.join(rotation.new)} (ConfigTemplate.xml pair)"
                if rotation
                else "the ConfigTemplate.xml pair does not rotate the DataEncryption certificate",
            )
        )
        complete = reencryption_complete(ctx.snapshot)
        if complete is None:
            detail = "unknown: no progress probe reads AXDB"
        else:
            detail = "every progress probe reads zero" if complete else "progress probes show data left"
        checks.append(Check("re-encryption not finished", complete is not True, detail))
        return checks

    def plan(self, ctx: RemediationContext) -> Plan:
        """Read the rows now; update what exists, insert what does not."""
        spec = axdb_spec(ctx)
        partition, flight, values = _read(spec)
        statements, rows = [], []
        flight_row = {"table": "SYSFLIGHTING", "FLIGHTNAME": q.FLIGHT_NAME, "PARTITION": partition}
        if not flight:
            statements.append(
                SqlStatement(
                    INSERT_FLIGHT.text,
                    (q.FLIGHT_NAME, 1, q.FLIGHT_SERVICE_ID, q.PARTITION_KEY, q.FLIGHT_NAME),
                )
            )
            rows.append({**flight_row, "FLIGHTSERVICEID": q.FLIGHT_SERVICE_ID, "ENABLED": "(no row: inserted)"})
        elif not all(enabled for enabled, _service in flight):
            statements.append(SqlStatement(UPDATE_FLIGHT.text, (1, q.FLIGHT_NAME, partition)))
            rows += [
                {**flight_row, "FLIGHTSERVICEID": service, "ENABLED": 0} for enabled, service in flight if not enabled
            ]
        enabled_value = q.CONFIG_ENABLED.lower()
        if not values:
            statements.append(SqlStatement(INSERT_KEY.text, (q.CONFIG_KEY, q.CONFIG_ENABLED, q.CONFIG_KEY)))
            rows.append({"table": "SECURITYCONFIG", "KEY_": q.CONFIG_KEY, "VALUE": "(no row: inserted)"})
        elif not any(v.strip().lower() == enabled_value for v in values):
            statements.append(SqlStatement(UPDATE_KEY.text, (q.CONFIG_ENABLED, q.CONFIG_KEY)))
            rows += [{"table": "SECURITYCONFIG", "KEY_": q.CONFIG_KEY, "VALUE": v} for v in values]
        if not statements:
            return Plan(self.name, (), reason="the flight and the config key are already enabled")
        change = SqlChange(spec.label, tuple(statements), tuple(rows))
        return Plan(self.name, (change,), follow_up=follow_up_steps())

    def apply(self, ctx: RemediationContext, plan: Plan, checkpoint: Checkpoint) -> None:
        """Run the statements in one transaction; the undo is registered before the commit."""
        spec = axdb_spec(ctx)
        changes = [c for c in plan.changes if isinstance(c, SqlChange)]
        if len(changes) != len(plan.changes):
            raise RemediationError(f"{self.name}: the plan holds changes that are not SQL")
        db = _connect(spec, write=True)
        try:
            for change in changes:
                known = [STATEMENTS.get(s.sql) for s in change.statements]
                if None in known:
                    raise RemediationError(f"{self.name}: the plan holds a statement this remediation does not know")
                # The rows as this transaction sees them before it changes anything: what the undo restores.
                undo = _undo(db, [s for s in known if s is not None])
                checkpoint.on_rollback(
                    f"restore the SYSFLIGHTING and SECURITYCONFIG rows of {spec.label}", partial(_restore, spec, undo)
                )
                for statement, planned in zip(known, change.statements, strict=True):
                    assert statement is not None
                    touched = db.execute(statement, planned.parameters)
                    if statement in (UPDATE_FLIGHT, UPDATE_KEY) and touched < 1:
                        raise RemediationError(f"{statement.name}: the row is gone since the plan was made; plan again")
            db.commit()
        except CollectorError as err:
            db.rollback()
            raise RemediationError(str(err)) from err
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()

    def verify(self, ctx: RemediationContext, plan: Plan) -> None:
        """Read both switches back through a new connection."""
        spec = axdb_spec(ctx)
        with _connect(spec, write=False) as db:
            try:
                flight = read_flight(db)
                values = read_config_values(db)
            except CollectorError as err:
                raise VerificationError(f"after the commit: {err}") from err
        if not flight or not all(row.enabled for row in flight):
            raise VerificationError(f"{spec.label}: the flight does not read as enabled after the commit")
        if not any(v.strip().lower() == q.CONFIG_ENABLED.lower() for v in values):
            raise VerificationError(f"{spec.label}: the config key does not read as True after the commit")


Undo = list[tuple[Statement, tuple[Any, ...]]]


def _undo(db: Database, statements: list[Statement]) -> Undo:
    """Statements that put back what `statements` change, each touching only rows still as apply left them."""
    try:
        partition = int(db.query(PARTITION_RECID, (q.PARTITION_KEY,))[0][0])
        flight = {row.service_id: row.enabled for row in read_flight(db)}
        values = read_config_values(db)
    except (CollectorError, IndexError) as err:
        raise RemediationError(f"cannot read the rows before changing them: {err}") from err
    undo: Undo = []
    if UPDATE_FLIGHT in statements:
        # Only the rows the update turns on go back to 0, each by its FLIGHTSERVICEID.
        undo += [
            (RESTORE_FLIGHT, (0, q.FLIGHT_NAME, service, partition, 1))
            for service, enabled in sorted(flight.items())
            if not enabled
        ]
    if INSERT_FLIGHT in statements:
        undo.append((DELETE_FLIGHT, (q.FLIGHT_NAME, q.FLIGHT_SERVICE_ID, partition)))
    if UPDATE_KEY in statements:
        undo.append((RESTORE_KEY, (values[0] if values else "", q.CONFIG_KEY, q.CONFIG_ENABLED)))
    if INSERT_KEY in statements:
        undo.append((DELETE_KEY, (q.CONFIG_KEY, q.CONFIG_ENABLED)))
    return undo


def _restore(spec: DatabaseSpec, undo: Undo) -> str:
    """The compensation (verification failed, or a stop signal came after the commit): the rows as they were."""
    db = connect(spec, Deadline.after(SQL_SECONDS), read_only=False, autocommit=False)
    try:
        touched = sum(db.execute(statement, parameters) for statement, parameters in undo)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()
    return "restored" if touched else "unchanged (nothing had been committed)"


def follow_up_steps() -> tuple[str, ...]:
    """What the operator does once the switches are set."""
    return (
        "Restart the AOS nodes (Service Fabric Explorer: restart each AOS node); the AOS then schedules the "
        "'Encrypted data rotation system job', which runs outside business hours for two hours a day.",
        "Keep the old data encryption certificate installed until certmon reports re-encryption complete; "
        "removing it, or letting it expire, before then loses encrypted data.",
    )
