"""The remediation errors: a leaf every remediation module (and the checkpoint) can import."""

from __future__ import annotations

from collectors.errors import CertmonError


class RemediationError(CertmonError):
    """A remediation cannot plan or apply; the message says why in the operator's words."""


class VerificationError(RemediationError):
    """After the write, the target does not read back as intended."""
