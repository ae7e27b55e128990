"""The Infrastructure scripts: a new ConfigTemplate.xml schema needs the old file's content migrated."""

from __future__ import annotations

from collections.abc import Iterable

from collectors.model import Finding, Severity
from daemon.context import TEMPLATE_SOURCE, Context, listing
from daemon.inventory import template_migration


def schema_changed_findings(ctx: Context) -> Iterable[Finding]:
    """Infrastructure and InfrastructureOld declare different schemas and the new file is not migrated."""
    migration = template_migration(ctx)
    if migration is None or not migration.schema_changed or migration.migrated:
        return
    if migration.downgraded:
        problem = "Infrastructure declares an older schema than InfrastructureOld: are the folders swapped?"
    else:
        problem = f"the new file lacks {listing(list(migration.missing), 3)} of the old one"
    yield Finding(
        "config-template-schema-changed",
        Severity.WARNING,
        f"ConfigTemplate.xml schema changed from {migration.old_version or '(none)'} (InfrastructureOld) to "
        f"{migration.new_version or '(none)'} (Infrastructure) and {problem}: migrate the old ConfigTemplate.xml "
        f"into the new schema before generating certificates",
        source=TEMPLATE_SOURCE,
        target="Infrastructure",
        step="scripts-updated",
    )
