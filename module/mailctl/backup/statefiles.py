"""The state files of an export: a consistent copy of the database, and on import the
swap of the database, secrets and TLS directories (undone if a later step fails)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from pathlib import Path

from ..errors import MailError
from ..settings import Instance

# Directories of the instance's state dir that make up its state (config/ is derived).
STATE_PARTS = ("db", "secrets", "tls")


def copy_database(source: Path, dest: Path) -> None:
    """A consistent copy, even while another process writes (SQLite backup API)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def swap_state(instance: Instance, new_state: Path) -> list[tuple[Path, Path]]:
    """Put the imported db file, secrets and tls dirs in place; return (current, old) pairs."""
    swapped: list[tuple[Path, Path]] = []
    stamp = f".import-old-{os.getpid()}"
    items = [(new_state / "db" / "state.sqlite", instance.db_path)]
    items += [(new_state / part, instance.state_dir / part) for part in STATE_PARTS if part != "db"]
    try:
        for new, current in items:
            if not new.exists():
                continue  # tls missing: a self-signed certificate is made by prepare()
            old = current.with_name(current.name + stamp)
            if current.exists():
                os.replace(current, old)
            swapped.append((current, old))
            os.replace(new, current)
        _harden_secrets(instance.secrets_dir)
    except BaseException:
        unswap_state(swapped)
        raise
    return swapped


def unswap_state(swapped: list[tuple[Path, Path]]) -> None:
    """Put the state files of before the swap back."""
    for current, old in reversed(swapped):
        remove_path(current)
        if old.exists():
            os.replace(old, current)


def drop_old_state(swapped: list[tuple[Path, Path]]) -> None:
    """The import succeeded: remove the state files of before the swap."""
    for _, old in swapped:
        remove_path(old)


def remove_path(path: Path) -> None:
    """Remove a file or a directory tree (a missing one is fine)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _harden_secrets(secrets_dir: Path) -> None:
    """Secret files 0600 and directories 0700, whatever the archive said.

    Links are never followed (a link here could point at any file of the host): the
    unpack refuses them already, this refuses them again rather than chmod their target.
    """
    if secrets_dir.is_symlink():
        raise MailError(f"{secrets_dir} is a symbolic link: the import is refused")
    if not secrets_dir.exists():
        return
    for root, dirs, files in os.walk(secrets_dir):
        for path in [Path(root), *(Path(root) / d for d in dirs), *(Path(root) / f for f in files)]:
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode) or not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
                raise MailError(f"{path} is not a regular file or directory: the import is refused")
            os.chmod(path, 0o700 if stat.S_ISDIR(info.st_mode) else 0o600)
