"""Remediation steps an operator runs on demand: plan, dry-run, apply with backup and audit."""
