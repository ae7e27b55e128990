"""Per-source wiring of the daemon: each source's settings section, collector factory, `check-config` paths and
remediation options, one module per source; `registry` registers them.

Dependency direction: base <- <source> modules <- registry <- daemon.settings; nothing here imports
`daemon.settings` or any other daemon module.
"""
