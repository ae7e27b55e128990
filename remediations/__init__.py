"""Remediation steps an operator runs on demand: plan, dry-run, apply with backup and audit.

Dependency direction: daemon -> remediations -> collectors. Nothing here imports `daemon/`;
the daemon hands in what a remediation needs (`base.RemediationContext`) and where audit
records go (`audit.AuditSink`).

Modules, and the extension point each offers:

* `base`      the contract: `Remediation` (name, description, step, sources,
              preconditions, plan, apply, verify), `Check`, `RemediationContext`;
* `plan`      what would change: `FileChange`, `SqlChange`, `RemoteCommand`, `HttpRequest`, `Plan`;
* `jsonedit`  byte-preserving edits of hand-edited JSON (set, insert, delete, append),
              on top of `jsonspan` (where each value lies in the text; JSON paths);
* `files`     atomic writes (same-folder temp file, fsync, os.replace) and backups;
* `checkpoint` side effects of one apply and their undo steps (`write_file`, `on_rollback`);
* `lock`      one remediation at a time per environment, across processes;
* `signals`   SIGTERM/SIGINT turned into a rollback while a change is in progress;
* `journal`   the intent record that lets the next run report a killed one;
* `audit`     audit records, the JSON-lines file, pluggable sinks, secret redaction;
* `engine`    dry run and apply: the only place side effects are performed;
* `outcome`   how a run ended (`Outcome`, `Result`, `Availability`) and its exit code;
* `registry`  one line per remediation;
* `localagent` the first remediation, `localagent-config-update`;
* `servicefabric` `sf-stage-rotation`, `sf-cleanup-old-certs`, `sf-replica-check-timeout`, built
              on `sfconfig` (ClusterConfig.json edits), `sfgateway` (admin calls through the
              gateway, `options["servicefabric"]`) and `sfchecks` (their preconditions).

Adding a remediation: subclass `base.Remediation` in a new module, build its plan from the
snapshot with the same functions the evaluator uses for the finding it fixes (the finding
names it in `Finding.remediation`), register it in `registry.REMEDIATIONS`, and test dry run,
apply, a second apply (no-op) and each refusing precondition. File edits need nothing but
`plan` and `verify`; SQL and remote commands override `apply` and register compensations
with `checkpoint.on_rollback` where an inverse exists.
"""
