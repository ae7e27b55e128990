"""Every SQL text the collectors run, in T-SQL that PostgreSQL and SQLite accept too; parameters always bound.

AX tables carry a PARTITION column referring to PARTITIONS.RECID; F&O on-premises has one
partition, keyed 'initial'. Reads of partitioned tables join PARTITIONS and filter on that key,
so a database restored from another environment (or carrying a second partition) never mixes
rows of another partition into the answer. SECURITYCONFIG is read and written by key alone,
as Microsoft's re-encryption instructions do.
"""

from __future__ import annotations

from collectors.sql.connection import Statement

FLIGHT_NAME = "EnableEncryptedDataCrawlerRotationTask"
# What the runbook inserts when no row of the flight exists; an existing row is updated whatever its id.
FLIGHT_SERVICE_ID = 0
CONFIG_KEY = "EnableEncryptedDataRotation"
CONFIG_ENABLED = "True"
PARTITION_KEY = "initial"
JOB_CAPTION = "Encrypted data rotation system job"
CONFIG_JSON_ASSET = "config.json"
BACKUP_FULL = "D"

# BATCHJOB.STATUS / BATCHJOBHISTORY.STATUS (BatchStatus enum).
JOB_STATUS = {
    0: "Hold",
    1: "Waiting",
    2: "Executing",
    3: "Error",
    4: "Ended",
    5: "Ready",
    6: "NotRun",
    7: "Cancelling",
    8: "Canceled",
    9: "Scheduled",
}
STATUS_ERROR, STATUS_ENDED = 3, 4

FLIGHT_ROWS = Statement(
    "SYSFLIGHTING flight",
    "SELECT F.ENABLED, F.FLIGHTSERVICEID FROM SYSFLIGHTING AS F"
    " INNER JOIN PARTITIONS AS P ON P.RECID = F.PARTITION"
    " WHERE F.FLIGHTNAME = ? AND P.PARTITIONKEY = ?",
)
CONFIG_ROWS = Statement("SECURITYCONFIG key", "SELECT S.VALUE FROM SECURITYCONFIG AS S WHERE S.KEY_ = ?")
JOB_ROWS = Statement(
    "BATCHJOB re-encryption job",
    "SELECT J.RECID, J.STATUS, J.STARTDATETIME, J.ENDDATETIME, J.ORIGSTARTDATETIME, J.RECURRENCEDATA, J.COMPANY"
    " FROM BATCHJOB AS J INNER JOIN PARTITIONS AS P ON P.RECID = J.PARTITION"
    " WHERE J.CAPTION = ? AND P.PARTITIONKEY = ? ORDER BY J.RECID DESC",
)
RUN_SUMMARY = Statement(
    "BATCHJOBHISTORY runs",
    "SELECT COUNT(*), SUM(CASE WHEN H.STATUS = ? THEN 1 ELSE 0 END), SUM(CASE WHEN H.STATUS = ? THEN 1 ELSE 0 END),"
    " MAX(CASE WHEN H.STATUS = ? THEN H.ENDDATETIME END)"
    " FROM BATCHJOBHISTORY AS H INNER JOIN PARTITIONS AS P ON P.RECID = H.PARTITION"
    " WHERE H.CAPTION = ? AND P.PARTITIONKEY = ?",
)
LAST_RUN = Statement(
    "BATCHJOBHISTORY last run",
    "SELECT H.STATUS, H.STARTDATETIME, H.ENDDATETIME FROM BATCHJOBHISTORY AS H"
    " INNER JOIN PARTITIONS AS P ON P.RECID = H.PARTITION"
    " WHERE H.CAPTION = ? AND P.PARTITIONKEY = ? ORDER BY H.STARTDATETIME DESC, H.RECID DESC",
)
LAST_FULL_BACKUP = Statement(
    "msdb backupset",
    "SELECT B.backup_finish_date, B.time_zone FROM {backupset} AS B"
    " WHERE B.database_name = ? AND B.type = ? AND B.backup_finish_date ="
    " (SELECT MAX(L.backup_finish_date) FROM {backupset} AS L WHERE L.database_name = ? AND L.type = ?)",
)
CONFIG_JSON_LOCATIONS = Statement(
    "DeploymentInstanceArtifact config.json",
    "SELECT A.Location FROM DeploymentInstanceArtifact AS A WHERE A.AssetId = ? AND A.DeploymentInstanceId = ?",
)

STATEMENTS = (FLIGHT_ROWS, CONFIG_ROWS, JOB_ROWS, RUN_SUMMARY, LAST_RUN, LAST_FULL_BACKUP, CONFIG_JSON_LOCATIONS)


def probe_statement(name: str, sql: str) -> Statement:
    """An operator's progress probe as a statement (its braces are not placeholders)."""
    return Statement(f"probe {name}", sql.replace("{", "{{").replace("}", "}}"))
