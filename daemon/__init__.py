"""The certmon daemon: settings, scheduler, state store, evaluator, exporter, status API, CLI.

Dependency direction: daemon -> remediations -> collectors; daemon never imports simulator (the
`demo` command arrives through the `certmon.commands` entry point). Inside, from the leaves up:
`sources/` (per-source settings and factories) and `settings`; the pure evaluation (`context`,
`inventory`, `evidence`, `rules/`, `rotation/`, `evaluator`); `runner`, `state`, `view`; the outputs
(`metrics`, `payloads`, `status`, `api`, `remediation`, `scheduler`); `app` wires them; the CLI
(`report`, `remediate`, `cli`) sits on top. See docs/architecture.md.
"""

__version__ = "0.1.0"
