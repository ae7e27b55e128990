"""Crash-safe file writes: temporary file in the same folder, fsync, os.replace, fsync the folder.

A reader (or a crash) sees either the old file or the new one, never a partial write:
`os.replace` is atomic on the same file system, which is why the temporary file is created
next to the target rather than in the system temp folder. Temporary files carry a
recognisable name (`.<name>.certmon-<random>.tmp`) so that a later run can remove those a
killed process left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from collectors.errors import CollectorError, Reason, file_error
from collectors.files import read_bytes

TEMP_MARK = ".certmon-"
TEMP_SUFFIX = ".tmp"
# Windows refuses to replace a file another process holds open without FILE_SHARE_DELETE
# (an editor, an antivirus scan); such locks are usually released within a moment.
_REPLACE_ATTEMPTS = 5 if os.name == "nt" else 1
_REPLACE_BACKOFF_SECONDS = 0.2


def sha256(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def temp_prefix(path: Path) -> str:
    """Name prefix of the temporary files certmon creates next to `path`."""
    return f".{path.name}{TEMP_MARK}"


def stale_temp_files(path: Path) -> list[Path]:
    """Temporary files an interrupted write of `path` left behind."""
    try:
        return sorted(path.parent.glob(f"{temp_prefix(path)}*{TEMP_SUFFIX}"))
    except OSError:
        return []


def remove_stale_temp_files(path: Path) -> list[Path]:
    """Delete leftovers of interrupted writes of `path`; returns what was removed."""
    removed = []
    for leftover in stale_temp_files(path):
        try:
            leftover.unlink()
            removed.append(leftover)
        except FileNotFoundError:
            continue
        except OSError as err:
            raise file_error(str(leftover), err) from err
    return removed


def fsync_directory(folder: Path) -> None:
    """Make a rename in `folder` durable; a no-op where directories cannot be opened (Windows)."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        # Some network file systems refuse fsync on a directory; the rename itself is done.
        pass
    finally:
        os.close(fd)


def _replace(source: str, target: Path) -> None:
    for attempt in range(_REPLACE_ATTEMPTS):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if attempt == _REPLACE_ATTEMPTS - 1:
                raise
            time.sleep(_REPLACE_BACKOFF_SECONDS * (attempt + 1))


def _copy_owner(source: Path, target: str) -> None:
    if os.name == "nt":
        return  # a replaced file takes the folder's inherited ACL on Windows
    info = source.stat()
    # Only root may give a file away; otherwise the new file keeps the writer as owner.
    with contextlib.suppress(OSError):
        os.chown(target, info.st_uid, info.st_gid)


def atomic_write(path: Path, data: bytes, *, private: bool = False, follow_links: bool = True) -> None:
    """Replace `path` with `data` so that it is always either the old or the new content.

    A link at `path` is followed (the operator's configured file may be one) unless `follow_links`
    is False: then the rename replaces the link itself and nothing outside `path.parent` is written.
    """
    name = str(path)
    if follow_links and path.is_symlink():
        # Replace the file the link points at and keep the operator's link.
        path = path.resolve()
    try:
        fd, temp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as err:
        raise file_error(name, err) from err
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if private:
            os.chmod(temp, 0o600)
        elif path.exists():
            # Keep the target's permission bits (mkstemp creates 0600) and, where allowed, its owner.
            shutil.copymode(path, temp)
            _copy_owner(path, temp)
        _replace(temp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(err, OSError):
            raise file_error(name, err) from err
        raise
    fsync_directory(path.parent)


def write_backup(original: Path, data: bytes, folder: Path) -> Path:
    """Store the original bytes under `folder`, durably, and check the copy reads back equal."""
    if folder.is_symlink():
        # Backups hold what the originals held (Credentials.json): never into a folder a link chose.
        raise CollectorError(str(folder), Reason.PERMISSION_DENIED, "refused: the backup folder is a symbolic link")
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        raise file_error(str(folder), err) from err
    target = folder / original.name
    index = 1
    # lexists: a dangling link planted in the folder counts as taken, and is never written through.
    while os.path.lexists(target):
        index += 1
        target = folder / f"{index}-{original.name}"
    # Backups may hold anything the original held (Credentials.json): readable by the owner only.
    atomic_write(target, data, private=True, follow_links=False)
    if read_bytes(target) != data:
        raise CollectorError(str(target), Reason.INTERNAL_ERROR, "backup does not read back equal to the original")
    return target
