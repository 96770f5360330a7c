"""Folders and files only their owner can read: GTM_HOME, the SQLite store, the Dagster home.

The SQLite store holds customers' emails and phone numbers in plain text, and GTM_HOME holds it
beside the Dagster home, the emulator's keys and the demo's secrets. So what the project creates
there is private from the start, whatever the umask: folders 0700, database files 0600 (SQLite
gives its -wal and -shm files the database file's mode). A looser mode found on one of them when
a command starts is tightened: group and other bits are removed, the owner's are kept.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def tighten(path: Path, mode: int) -> None:
    """Remove the permission bits of `path` that `mode` does not grant, if it has any."""
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode:
        try:
            path.chmod(current & mode)
        except PermissionError:  # another user's folder (a shared GTM_HOME): say so, go on
            log.warning(
                "could not make %s private (mode %o): it belongs to another user", path, current
            )
            return
        log.info("made %s private: mode %o -> %o", path, current, current & mode)


def create_private_dirs(path: Path) -> None:
    """Create `path` and its missing parents as 0700 folders; existing folders are left alone."""
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
        folder.chmod(PRIVATE_DIR_MODE)  # mkdir's mode passes through the umask


def private_dir(path: Path) -> Path:
    """`path` as a folder only its owner may enter: created so, or tightened if it exists."""
    create_private_dirs(path)
    tighten(path, PRIVATE_DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """`path` as a file only its owner may read: created empty as 0600, or tightened."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE)
    except FileExistsError:
        tighten(path, PRIVATE_FILE_MODE)
        return path
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # os.open's mode passes through the umask
    finally:
        os.close(fd)
    return path
