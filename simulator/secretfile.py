"""Secret files of the lab and the demo (passwords, tokens, PFX files): owner-only from the first byte.

Writing the file and then `chmod`-ing it leaves a window in which anyone on the machine can read
it, and `write_text` on an existing file keeps its old, possibly wider, mode. Each secret is
written to a new file created with mode 0600 and moved over the old one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

SECRET_MODE = 0o600
SECRET_FOLDER_MODE = 0o700


def secret_folder(path: Path) -> Path:
    """Create a folder for secrets, accessible by its owner only."""
    path.mkdir(parents=True, exist_ok=True, mode=SECRET_FOLDER_MODE)
    path.chmod(SECRET_FOLDER_MODE)
    return path


def write_secret(path: Path, data: bytes | str) -> None:
    """Create or replace `path` with `data` (text as UTF-8), readable and writable by its owner only."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    fd = os.open(temp, flags, SECRET_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        # The umask may have narrowed the mode further; never wider, but say exactly what we mean.
        os.chmod(temp, SECRET_MODE)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
