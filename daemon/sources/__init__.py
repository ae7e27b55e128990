"""Per-source wiring of the daemon: each source's settings section, collector factory and remediation options."""
