"""Files only their owner may read: the state folder (0700) and what is in it (0600).

Transcripts, the audit log and the token are nobody else's business on a shared
machine, so every file sessiongate creates in its state gets these modes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

__all__ = ["make_private_dir", "open_no_follow", "touch_private"]


def make_private_dir(path: Path) -> None:
    """Create `path` and any missing parents as 0700 (folders that exist are left as they are)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)  # mkdir's mode is filtered by the umask


def touch_private(path: Path) -> None:
    """Create `path` as an empty 0600 file unless it exists; never through a symlink."""
    make_private_dir(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    os.close(os.open(path, flags, 0o600))


def open_no_follow(path: Path) -> BinaryIO:
    """Open `path` for reading, never through a symlink (OSError ELOOP if it is one)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    return os.fdopen(fd, "rb")
