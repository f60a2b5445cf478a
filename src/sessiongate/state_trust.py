"""Whether the state folder can be trusted before the gateway adopts what is in it.

A state folder someone else can write to (or that someone else owns) can hold a
token they chose, an audit that goes where they want, a database they edit. So
`serve` refuses to start, with one line naming the path and the fix, when:

- the state folder, or a file or folder directly in it (and in the audit folder
  when that is the state folder's), is writable by group or others, or owned by
  another user;
- the token file or the audit file is a symlink, or the audit folder is one when
  it is in the state folder.

Readers of those files refuse symlinks as the writers do
(`sessiongate.private_files.open_no_follow`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sessiongate.config import SessionGateConfig, state_dir
from sessiongate.errors import ConfigError

__all__ = ["check_state_trusted"]


def check_state_trusted(config: SessionGateConfig) -> None:
    """ConfigError (one line) when the state folder cannot be trusted (module docstring)."""
    state = state_dir()
    audit = config.audit_path
    own_audit_dir = audit.parent.parent == state
    links = [state / "gateway.token", audit, *([audit.parent] if own_audit_dir else [])]
    for path in links:
        if path.is_symlink():
            _refuse(path, "is a symlink", "replace it with a regular file or folder")
    for folder in (state, *([audit.parent] if own_audit_dir else [])):
        if folder.is_dir():
            for path in (folder, *sorted(folder.iterdir())):
                _check_owner_and_mode(path)


def _check_owner_and_mode(path: Path) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        return  # only the token and audit may not be links; others are followed by nobody here
    if info.st_uid != os.getuid():
        _refuse(path, f"is owned by another user (uid {info.st_uid})", "chown it to this user")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = f"{stat.S_IMODE(info.st_mode):o}"
        fix = f"chmod {'700' if stat.S_ISDIR(info.st_mode) else '600'} {path}"
        _refuse(path, f"is writable by group or others (mode {mode})", fix)


def _refuse(path: Path, problem: str, fix: str) -> None:
    raise ConfigError(
        f"refusing to start: {path} {problem}; {fix}",
        details={"path": str(path), "problems": [f"{path}: {problem}"]},
    )
