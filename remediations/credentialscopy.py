"""credentials-json-rotate without a second hop: copy the script and the file to the node, rotate there, copy back.

`sources.credentials.rotate.second_hop: copy`. Over plain NTLM/Kerberos WinRM the node cannot reach
the agent share, so nothing on the node touches the share:

1. certmon reads, on its own machine, Configure-CredentialsJson.ps1 and the PowerShell modules beside it
   (`*.psm1`, `*.psd1`) and the new ConfigTemplate.xml from the Infrastructure folder
   (`rotate.scripts_folder`, default `sources.configtemplate.infrastructure`), and Credentials.json from
   the share. The plan names each file with its SHA-256, so `--expect-plan` pins their content.
2. It creates `certmon-rotate-<random>` in the WinRM account's temporary folder and copies there
   `Infrastructure\\<the scripts>`, `Infrastructure\\ConfigTemplate.xml` with the agent share's `<Path>`
   pointed at `<that folder>\\agent`, and `agent\\Credentials\\Credentials.json` (chunked base64 through
   PowerShell, each file's SHA-256 compared on the node: collectors/winrm/nodefiles.py).
3. It runs the script there (`-ConfigurationFilePath <copy> -Action Rotate`), copies the rotated
   file back (SHA-256 compared), and removes the folder on the node.
4. It checks the result before anything touches the share: JSON, the same values as before, every one
   encrypted to the new certificate only; then the share's file must still be the one copied, and it
   is replaced atomically, with the backup and rollback credentials-json-rotate keeps for every way.

UNVERIFIED: that Configure-CredentialsJson.ps1 finds Credentials.json as `<agent share Path>\\Credentials\\
Credentials.json` from ConfigTemplate.xml and accepts a local folder as that path, and which files
beside it the script loads (the Infrastructure scripts are not published): certmon copies the script
and every .psm1/.psd1 of its folder.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from collectors.base import Deadline
from collectors.configtemplate import parse_config_template
from collectors.credentials import RecipientIndex, keys_not_on, parse_credentials, value_encryptions
from collectors.errors import CertmonError
from collectors.files import parse_json, read_bytes
from collectors.model import Generation
from collectors.winrm.command import ApprovedCommand
from collectors.winrm.nodefiles import MAX_FILE_BYTES, NodeFiles
from remediations.base import RemediationError

#: ctx.options key: a function opening a NodeFiles session to a node
NODE_FILES_OPTION = "node_files"
TEMPLATE_NAME = "ConfigTemplate.xml"
MODULE_SUFFIXES = (".psm1", ".psd1")
MAX_SCRIPT_FILES = 32
#: everything copied to the node together
MAX_COPY_BYTES = 4 * 1024 * 1024
FOLDER_PREFIX = "certmon-rotate-"
#: how long the clean-up of the node's folder may take after a failure
CLEANUP_SECONDS = 30.0
_AGENT_SHARE = re.compile(rb'(<FileShare\b[^>]*\brefName\s*=\s*["\']agent["\'][^>]*>)(.*?)(</FileShare>)', re.S)
_PATH = re.compile(rb"<Path>[^<]*</Path>|<Path\s*/>")

NodeFilesFactory = Callable[[str], NodeFiles]
_PLACEHOLDER = "C:\\certmon-temp-folder"


@dataclass(frozen=True)
class CopySet:
    """What goes to the node: the script (first) and its modules, the new ConfigTemplate.xml, Credentials.json."""

    scripts: tuple[tuple[str, bytes], ...]
    template: bytes
    credentials: bytes

    def describe(self, node: str, share_file: Path) -> str:
        """The plan's text: every file with its SHA-256, the command, the way back."""
        files = [*self.scripts, (TEMPLATE_NAME, self.template)]
        folder = f"%TEMP%\\{FOLDER_PREFIX}<random>"
        copied = ", ".join(f"Infrastructure\\{name} (SHA-256 {_digest(data)})" for name, data in files)
        # The folder's name is drawn when the copy runs: the command is shown with the placeholder.
        command = _command(_PLACEHOLDER, self.scripts[0][0]).text().replace(_PLACEHOLDER, folder)
        return (
            f"copy to {folder} on {node} over WinRM, each file checked by SHA-256: {copied} "
            f"(agent share Path pointed at {folder}\\agent), agent\\Credentials\\Credentials.json "
            f"(SHA-256 {_digest(self.credentials)}); run {command}; copy "
            f"{folder}\\agent\\Credentials\\Credentials.json back, check every value is encrypted to the new "
            f"certificate, replace {share_file} (backup kept); remove {folder}"
        )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _command(folder: str, script_name: str) -> ApprovedCommand:
    infrastructure = f"{folder}\\Infrastructure"
    return ApprovedCommand(
        f"{infrastructure}\\{script_name}",
        (("ConfigurationFilePath", f"{infrastructure}\\{TEMPLATE_NAME}"), ("Action", "Rotate")),
    )


def read_copy_set(scripts_folder: Path | None, script_name: str, credentials: Path) -> CopySet:
    """The files to copy, read now; RemediationError naming what is missing or too large."""
    if scripts_folder is None:
        raise RemediationError(
            "second_hop copy needs the Infrastructure folder on this machine: set sources.credentials.rotate."
            "scripts_folder (or sources.configtemplate.infrastructure)"
        )
    folder = scripts_folder if scripts_folder.is_dir() else scripts_folder.parent
    script = folder / script_name
    try:
        modules = sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MODULE_SUFFIXES and p != script
        )
        if len(modules) + 1 > MAX_SCRIPT_FILES:
            raise RemediationError(f"{folder}: {len(modules) + 1} script files, over the limit of {MAX_SCRIPT_FILES}")
        scripts = tuple((p.name, _bounded(p)) for p in (script, *modules))
        template = _bounded(folder / TEMPLATE_NAME)
        data = _bounded(credentials)
    except CertmonError as err:
        raise RemediationError(f"cannot read the files to copy: {err}") from err
    except OSError as err:
        raise RemediationError(f"cannot read the files to copy from {folder}: {err.strerror or err}") from err
    total = sum(len(d) for _, d in scripts) + len(template) + len(data)
    if total > MAX_COPY_BYTES:
        raise RemediationError(f"the files to copy come to {total} bytes, over the limit of {MAX_COPY_BYTES}")
    return CopySet(scripts, template, data)


def _bounded(path: Path) -> bytes:
    data = read_bytes(path)
    if len(data) > MAX_FILE_BYTES:
        raise RemediationError(f"{path}: {len(data)} bytes, over the {MAX_FILE_BYTES}-byte limit of a copy")
    return data


def point_agent_share(template: bytes, path: str, name: str = TEMPLATE_NAME) -> bytes:
    """The template with the agent FileShare's Path set to `path`; every other byte kept."""
    found = list(_AGENT_SHARE.finditer(template))
    if len(found) != 1 or len(_PATH.findall(found[0].group(2))) != 1:
        raise RemediationError(f'{name}: expected one FileShare refName="agent" with one <Path>')
    inner = _PATH.sub(lambda _: b"<Path>" + escape(path).encode("utf-8") + b"</Path>", found[0].group(2))
    edited = template[: found[0].start(2)] + inner + template[found[0].end(2) :]
    try:
        parsed = parse_config_template(edited, name, Generation.NEW)
    except CertmonError as err:
        raise RemediationError(f"{name}: after pointing the agent share at the copy: {err}") from err
    if parsed.share("agent") != path:
        raise RemediationError(f"{name}: the agent share of the edited copy reads {parsed.share('agent')!r}")
    return edited


def rotate_on_node(files: NodeFiles, copy: CopySet, deadline: Deadline) -> bytes:
    """Copy, run, copy back; the node's folder is removed whatever happens. The rotated Credentials.json."""
    # A run killed half-way (certmon's process, not the node) left its folder behind: remove those first.
    files.remove_stale(FOLDER_PREFIX, deadline)
    folder = files.make_temp_folder(FOLDER_PREFIX + secrets.token_hex(8), deadline)
    failure: BaseException | None = None
    try:
        infrastructure = f"{folder}\\Infrastructure"
        for name, data in copy.scripts:
            files.upload(data, f"{infrastructure}\\{name}", deadline)
        template = point_agent_share(copy.template, f"{folder}\\agent")
        files.upload(template, f"{infrastructure}\\{TEMPLATE_NAME}", deadline)
        remote = f"{folder}\\agent\\Credentials\\Credentials.json"
        files.upload(copy.credentials, remote, deadline)
        outcome = files.run_outcome(_command(folder, copy.scripts[0][0]).command_line(), deadline)
        if not outcome.ok:
            errors = "; ".join(outcome.errors) or outcome.output or "no output"
            raise RemediationError(f"{files.node}: Configure-CredentialsJson.ps1 exited {outcome.exit_code}: {errors}")
        return files.download(remote, deadline)
    except BaseException as err:
        failure = err
        raise
    finally:
        _remove(files, folder, failure)


def _remove(files: NodeFiles, folder: str, failure: BaseException | None) -> None:
    try:
        files.remove_folder(folder, Deadline.after(CLEANUP_SECONDS))
    except CertmonError as err:
        message = f"{files.node}: could not remove {folder} (delete it by hand): {err}"
        if failure is None:
            raise RemediationError(message) from err
        failure.add_note(message)


def check_rotated(original: bytes, rotated: bytes, new: str, index: RecipientIndex, name: str) -> None:
    """The copy that came back: JSON, the same values as before, every one encrypted to `new` only."""
    try:
        before, _ = parse_credentials(parse_json(original, name), name)
        after, problems = parse_credentials(parse_json(rotated, f"{name} (rotated copy)"), name)
    except CertmonError as err:
        raise RemediationError(f"the rotated copy is not usable: {err}") from err
    if problems:
        raise RemediationError(f"the rotated copy is not usable: {'; '.join(p.message for p in problems)}")
    keys_before, keys_after = sorted(v.key for v in before.values), sorted(v.key for v in after.values)
    if keys_before != keys_after:
        missing = sorted(set(keys_before) - set(keys_after))
        added = sorted(set(keys_after) - set(keys_before))
        raise RemediationError(f"the rotated copy has other values than the original (missing {missing}, new {added})")
    pending = keys_not_on(value_encryptions(after, index, {}), new)
    if pending:
        raise RemediationError(f"in the rotated copy {', '.join(pending)} are not encrypted to {new}")
