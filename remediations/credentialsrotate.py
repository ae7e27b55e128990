"""credentials-json-rotate: re-encrypt Credentials.json to the new encipherment certificate, on an AOS node.

The runbook's "Rotate Credentials.json": on an AOS node, in the infrastructure scripts folder,
`.\\Configure-CredentialsJson.ps1 -ConfigurationFilePath .\\ConfigTemplate.xml -Action Rotate`.
The script decrypts every value with the certificate it is encrypted to (the old one, whose
private key must still be on that node) and encrypts it to the encipherment certificate the
template names. certmon runs exactly that command over WinRM (an `ApprovedCommand`, shown in
the plan), keeps a backup of the file it can reach on the share, then reads the recipients
back: every value must now be encrypted to the new certificate, or the backup is restored.

The double hop: the script reads and writes Credentials.json on the agent share, a second machine.
Over WinRM with NTLM (or Kerberos without delegation) the remote session has no credentials for
that second hop and the share answers "Access to the path ... is denied".
`sources.credentials.rotate.second_hop` says how certmon gets round it (docs/credentials-rotate.md):
`delegation` (the operator declares Kerberos constrained delegation from the node to the file server),
`credssp` (the winrm source logs on with CredSSP, which hands the account's credentials to the node),
`copy` (no second hop at all: script and file go to the node and back, remediations/credentialscopy.py);
otherwise (`refuse`) the remediation is refused with that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from collectors.base import Deadline
from collectors.configtemplate import ConfigTemplate
from collectors.credentials import (
    ENCIPHERMENT_ROLE,
    SOURCE,
    CredentialsFacts,
    RecipientIndex,
    encipherment_generations,
    keys_not_on,
    load_credentials,
    value_encryptions,
)
from collectors.errors import CertmonError, CollectorError
from collectors.files import read_bytes
from collectors.model import CertObservation, Generation
from collectors.winrm.command import ApprovedCommand, CommandOutcome
from remediations.base import Check, Remediation, RemediationContext, RemediationError, VerificationError
from remediations.checkpoint import Checkpoint
from remediations.credentialscopy import (
    NODE_FILES_OPTION,
    NodeFilesFactory,
    check_rotated,
    read_copy_set,
    rotate_on_node,
)
from remediations.files import atomic_write, write_backup
from remediations.plan import Plan, RemoteCommand

#: ctx.options keys
CREDENTIALS_PATH_OPTION = "credentials_path"
ROTATE_OPTION = "credentials_rotate"
REMOTE_OPTION = "remote_command"

RemoteRunner = Callable[[str, ApprovedCommand, Deadline], CommandOutcome]


@dataclass(frozen=True)
class RotateTarget:
    """Where and how to run the script (sources.credentials.rotate)."""

    node: str
    script: str
    configuration_file: str
    timeout_seconds: float = 600.0
    #: refuse | delegation (declared by the operator) | credssp (winrm transport credssp) | copy (to the node and back)
    second_hop: str = "refuse"
    #: the winrm source's transport (credssp is checked against it)
    transport: str = ""
    #: copy: the Infrastructure folder as this machine reads it (script, modules, the new ConfigTemplate.xml)
    scripts_folder: Path | None = None

    def command(self) -> ApprovedCommand:
        """The exact command the operator approves."""
        return ApprovedCommand(self.script, (("ConfigurationFilePath", self.configuration_file), ("Action", "Rotate")))


def new_encipherment(ctx: RemediationContext) -> str:
    """The thumbprint the new ConfigTemplate.xml names for the encipherment certificate (what the script uses)."""
    named = {
        tp
        for _, t in ctx.snapshot.facts("configtemplate", ConfigTemplate)
        if t.generation is Generation.NEW
        for tp in t.thumbprints(ENCIPHERMENT_ROLE)
    }
    if len(named) != 1:
        found = ", ".join(sorted(named)) or "none"
        raise RemediationError(f"the new ConfigTemplate.xml must name one encipherment certificate (found: {found})")
    return named.pop()


def _path(ctx: RemediationContext) -> Path:
    path = ctx.options.get(CREDENTIALS_PATH_OPTION)
    if not isinstance(path, Path):
        raise RemediationError(
            "Credentials.json is not configured (sources.credentials.path or sources.agentshare.path)"
        )
    return path


def _target(ctx: RemediationContext) -> RotateTarget:
    target = ctx.options.get(ROTATE_OPTION)
    if not isinstance(target, RotateTarget) or not target.node:
        raise RemediationError("sources.credentials.rotate.node (an AOS node) is not set")
    return target


def _remote(ctx: RemediationContext) -> RemoteRunner:
    runner = ctx.options.get(REMOTE_OPTION)
    if runner is None:
        raise RemediationError("the winrm source is not configured: certmon cannot run a command on a node")
    return runner


def _second_hop(ctx: RemediationContext) -> str:
    target, path = _target(ctx), _path(ctx)
    if target.second_hop == "delegation":
        return (
            f"declared (sources.credentials.rotate.second_hop: delegation): the WinRM session on {target.node} "
            "can reach the agent share through Kerberos delegation"
        )
    if target.second_hop == "credssp":
        if target.transport != "credssp":
            raise RemediationError(
                "sources.credentials.rotate.second_hop: credssp needs sources.winrm.transport: credssp "
                f"(now {target.transport or 'no winrm source'})"
            )
        return f"CredSSP: the WinRM session hands the account's credentials to {target.node} for the agent share"
    if target.second_hop == "copy":
        _node_files(ctx)
        copy = read_copy_set(target.scripts_folder, _script_name(target), path)
        names = ", ".join(name for name, _ in copy.scripts)
        return f"no second hop: {names}, ConfigTemplate.xml and {path.name} are copied to {target.node} and back"
    raise RemediationError(
        f"Configure-CredentialsJson.ps1 on {target.node} reads and writes {path.name} on the agent share, a second "
        "hop from the WinRM session: with NTLM, or Kerberos without delegation, the share denies it. Set "
        "sources.credentials.rotate.second_hop to copy (the script and the file go to the node and back), "
        "credssp (with sources.winrm.transport: credssp, CredSSP enabled on the node) or delegation (Kerberos "
        "constrained delegation to the file server in place), or run the runbook step on the node yourself "
        "(docs/credentials-rotate.md)"
    )


def _script_name(target: RotateTarget) -> str:
    return target.script.rsplit("\\", 1)[-1]


def _node_files(ctx: RemediationContext) -> NodeFilesFactory:
    factory = ctx.options.get(NODE_FILES_OPTION)
    if factory is None:
        raise RemediationError("the winrm source is not configured: certmon cannot copy files to a node")
    return factory


def _remote_described(ctx: RemediationContext) -> str:
    _remote(ctx)
    return "the command runs with the winrm source's transport and account"


class CredentialsJsonRotate(Remediation):
    """Run Configure-CredentialsJson.ps1 -Action Rotate on an AOS node and check every value's recipient."""

    name = "credentials-json-rotate"
    description = "Re-encrypt Credentials.json to the new encipherment certificate (Configure-CredentialsJson.ps1)."
    step = "credentials-rotated"
    sources = (SOURCE,)

    def preconditions(self, ctx: RemediationContext) -> list[Check]:
        """File and node configured, file read, the node holds the new certificate and every key the values need."""
        checks = []
        for name, read in (
            ("Credentials.json configured", lambda: str(_path(ctx))),
            ("AOS node configured", lambda: _target(ctx).node),
            ("WinRM configured", lambda: _remote_described(ctx)),
            ("second hop to the agent share", lambda: _second_hop(ctx)),
            ("new encipherment certificate named", lambda: new_encipherment(ctx)),
        ):
            try:
                checks.append(Check(name, True, str(read())))
            except RemediationError as err:
                checks.append(Check(name, False, str(err)))
        results = ctx.snapshot.of_source(SOURCE)
        failing = "; ".join(f"{r.health.reason}: {r.health.message}" for r in results if not r.health.ok)
        read_ok = bool(results) and not failing
        checks.append(Check("Credentials.json collected", read_ok, failing or ("read" if results else "not collected")))
        if all(c.ok for c in checks):
            checks.append(self._node_check(ctx))
        return checks

    def _node_check(self, ctx: RemediationContext) -> Check:
        name = "node holds the certificates"
        node, new = _target(ctx).node, new_encipherment(ctx)
        on_node = {o.thumbprint: o for o in ctx.snapshot.certificates() if o.node.lower() == node.lower()}
        if not on_node:
            return Check(name, False, f"no certificate inventory of {node} (winrm or certfolder source)")
        problems = []
        seen = on_node.get(new)
        if seen is None:
            problems.append(f"the new encipherment certificate {new} is not in {node}'s stores")
        elif seen.certificate.not_after <= ctx.now:
            problems.append(f"the new encipherment certificate {new} expired on {seen.certificate.not_after:%Y-%m-%d}")
        index = RecipientIndex(o.certificate for o in ctx.snapshot.certificates())
        generations = encipherment_generations(ctx.snapshot.references())
        for _, facts in ctx.snapshot.facts(SOURCE, CredentialsFacts):
            encryptions = value_encryptions(facts, index, generations)
            for key in keys_not_on(encryptions, new):
                recipients = [e for e in encryptions if e.key == key]
                # The script decrypts with whichever recipient's key the node holds.
                if any(_holds_key(on_node, e.thumbprint) for e in recipients):
                    continue
                names = ", ".join(e.thumbprint or e.recipient.describe() for e in recipients)
                problems.append(f"{key}: {node} holds no private key the value is encrypted to ({names})")
        detail = "; ".join(dict.fromkeys(problems)) or f"{new} and the keys of every value's current certificate"
        return Check(name, not problems, detail)

    def plan(self, ctx: RemediationContext) -> Plan:
        """Read Credentials.json now: the command runs when some value is not encrypted to the new certificate."""
        path, target, new = _path(ctx), _target(ctx), new_encipherment(ctx)
        pending = self._pending(ctx, path, new)
        if not pending:
            return Plan(self.name, (), reason=f"every value of {path.name} is encrypted to {new}")
        command = RemoteCommand(target.node, self._command_text(target, path))
        return Plan(self.name, (command,), follow_up=follow_up_steps(pending, new))

    @staticmethod
    def _command_text(target: RotateTarget, path: Path) -> str:
        if target.second_hop == "copy":
            return read_copy_set(target.scripts_folder, _script_name(target), path).describe(target.node, path)
        return target.command().text()

    @staticmethod
    def _pending(ctx: RemediationContext, path: Path, new: str) -> list[str]:
        try:
            facts, _ = load_credentials(path)
        except CollectorError as err:
            raise RemediationError(f"cannot read {err}") from err
        index = RecipientIndex(o.certificate for o in ctx.snapshot.certificates())
        encryptions = value_encryptions(facts, index, encipherment_generations(ctx.snapshot.references()))
        return keys_not_on(encryptions, new)

    def apply(self, ctx: RemediationContext, plan: Plan, checkpoint: Checkpoint) -> None:
        """Back up the file, run the approved command, fail on a non-zero exit or an error record."""
        path, target = _path(ctx), _target(ctx)
        commands = [c for c in plan.changes if isinstance(c, RemoteCommand)]
        if len(commands) != 1 or commands[0].command != self._command_text(target, path):
            raise RemediationError(f"{self.name}: the plan is not the approved command")
        original = read_bytes(path)
        backup = write_backup(path, original, checkpoint.backup_dir)
        checkpoint.backups.append(backup)
        checkpoint.on_rollback(f"restore {path} from {backup}", lambda: _restore(path, original))
        if target.second_hop == "copy":
            self._apply_copy(ctx, target, path, original)
            return
        try:
            outcome = _remote(ctx)(target.node, target.command(), Deadline.after(target.timeout_seconds))
        except CertmonError as err:
            raise RemediationError(f"running the command failed: {err}") from err
        if not outcome.ok:
            errors = "; ".join(outcome.errors) or outcome.output or "no output"
            raise RemediationError(f"{target.node}: Configure-CredentialsJson.ps1 exited {outcome.exit_code}: {errors}")

    @staticmethod
    def _apply_copy(ctx: RemediationContext, target: RotateTarget, path: Path, original: bytes) -> None:
        copy = read_copy_set(target.scripts_folder, _script_name(target), path)
        if copy.credentials != original:
            raise RemediationError(f"{path} changed while the remediation was starting; run it again")
        deadline = Deadline.after(target.timeout_seconds)
        try:
            files = _node_files(ctx)(target.node)
        except (CertmonError, ValueError) as err:
            raise RemediationError(f"cannot open a WinRM session to {target.node}: {err}") from err
        try:
            rotated = rotate_on_node(files, copy, deadline)
        except CertmonError as err:
            raise RemediationError(f"copying to {target.node} and back failed: {err}") from err
        finally:
            files.close()
        index = RecipientIndex(o.certificate for o in ctx.snapshot.certificates())
        check_rotated(original, rotated, new_encipherment(ctx), index, path.name)
        if read_bytes(path) != original:
            raise RemediationError(
                f"{path} changed on the share while it was rotated on {target.node}; nothing written"
            )
        atomic_write(path, rotated)

    def verify(self, ctx: RemediationContext, plan: Plan) -> None:
        """Every value of the file is now encrypted to the new certificate."""
        path, new = _path(ctx), new_encipherment(ctx)
        try:
            pending = self._pending(ctx, path, new)
        except RemediationError as err:
            raise VerificationError(f"after the command: {err}") from err
        if pending:
            raise VerificationError(f"after the command {', '.join(pending)} are still not encrypted to {new}")


def _holds_key(on_node: dict[str, CertObservation], thumbprint: str) -> bool:
    seen = on_node.get(thumbprint) if thumbprint else None
    return seen is not None and seen.has_private_key is not False


def _restore(path: Path, original: bytes) -> str:
    if read_bytes(path) == original:
        return "unchanged"
    atomic_write(path, original)
    return "restored"


def follow_up_steps(keys: list[str], new: str) -> tuple[str, ...]:
    """What the operator does afterwards."""
    return (
        f"Values re-encrypted to {new}: {', '.join(keys)} (the script rotates every value of the file).",
        "Keep the old encipherment certificate on the nodes until the whole certificate rotation is complete.",
    )
