"""The export archive format: the manifest, writing an archive, finding and checking one.

See the package docstring for the layout. An archive is read and checked completely
(manifest, database, volume files) before an import replaces anything.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sqlite3
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import MailError
from ..state import MIGRATIONS, Store
from .volumes import DATA_VOLUMES

# The most an import may unpack (bytes), whatever the free space says: a small archive
# can expand enormously (gzip), so its content is measured before it is written out.
MAX_IMPORT_BYTES = int(os.environ.get("MAIL_IMPORT_MAX_BYTES", str(500 * 2**30)))
# Free space an import leaves on the state filesystem (bytes).
IMPORT_FREE_MARGIN = 1 * 2**30

FORMAT = 1
MANIFEST = "manifest.json"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


class ArchiveError(MailError):
    """The given path is not a usable export: `error` is the NS8 error code for its field."""

    def __init__(self, field: str, error: str, message: str):
        super().__init__(message)
        self.field = field
        self.error = error


def new_manifest(instance_name: str, db: Path, volumes: list[str]) -> dict[str, Any]:
    """The manifest of an export of `instance_name` whose database copy is `db`."""
    return {
        "format": FORMAT, "instance": instance_name, "version": __version__,
        "schema_version": schema_version(db), "volumes": volumes,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def write_archive(dest: Path, members: list[tuple[Path, str]]) -> None:
    """Write a tar.gz readable by its owner only, atomically (temporary file + rename)."""
    tmp = dest.with_name(f".{dest.name}.partial")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w:gz", compresslevel=6) as tar:
            for path, arcname in members:
                if path.exists():
                    tar.add(path, arcname)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def resolve_backup(path: Path, snapshot: str | None = None) -> Path:
    """The archive (or extracted export directory) that `path` and `snapshot` name.

    `path` is an archive file, an extracted export (a directory with manifest.json), or a
    directory of archives: then `snapshot` names one of them, by default the newest.
    """
    if not path.exists():
        raise ArchiveError("path", "path_not_found", f"{path} does not exist")
    if path.is_file():
        if snapshot:
            raise ArchiveError("snapshot", "snapshot_not_found", f"{path} is a file, not a directory of snapshots")
        return path
    if (path / MANIFEST).is_file() and not snapshot:
        return path
    if snapshot:
        chosen = path / snapshot
        if snapshot in (".", "..") or not chosen.exists():
            raise ArchiveError("snapshot", "snapshot_not_found", f"no snapshot {snapshot!r} in {path}")
        return chosen
    archives = [p for p in path.iterdir() if p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES)]
    if not archives:
        raise ArchiveError("path", "backup_not_found", f"no export archive in {path}")
    return max(archives, key=lambda p: (p.stat().st_mtime, p.name))


def unpack(source: Path, work: Path) -> dict[str, Any]:
    """Extract (or copy) an export into `work` and check it; return its manifest.

    Only directories and regular files are accepted, from an archive as from a
    directory: a symbolic link, a hard link or a device in an export could make the
    import write (or chmod) outside the instance. The size is checked before anything
    is written (MAX_IMPORT_BYTES and the free space of `work`'s filesystem).
    """
    if source.is_dir():
        _copy_export_dir(source, work)
    else:
        try:
            with tarfile.open(source, "r:*") as tar:
                members = tar.getmembers()
                _check_size(source, work, sum(m.size for m in members if m.isfile()))
                for member in members:
                    if not (member.isfile() or member.isdir()):
                        raise ArchiveError("path", "invalid_archive",
                                           f"{source}: {member.name} is not a regular file or directory")
                tar.extractall(work, members=members, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArchiveError("path", "invalid_archive", f"{source} is not a readable archive: {exc}") from exc
    return check_unpacked(work, source)


def _check_size(source: Path, work: Path, size: int) -> None:
    """Refuse an export bigger than MAX_IMPORT_BYTES or than the free space beside `work`."""
    usage = shutil.disk_usage(work)
    room = min(MAX_IMPORT_BYTES, usage.free - IMPORT_FREE_MARGIN)
    if size > room:
        raise ArchiveError("path", "archive_too_big",
                           f"{source} would unpack to {size} bytes; at most {max(room, 0)} may be imported")


def _export_entries(source: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every entry of an export directory (manifest, state, volumes), links never followed.

    Raises ArchiveError for anything but directories and regular files with one link.
    """
    for top in (MANIFEST, "state", "volumes"):
        pending = [source / top]
        while pending:
            path = pending.pop()
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(info.st_mode):
                pending.extend(sorted(path.iterdir(), reverse=True))
            elif not stat.S_ISREG(info.st_mode):
                raise ArchiveError("path", "invalid_archive",
                                   f"{source}: {path.relative_to(source)} is not a regular file or directory")
            elif info.st_nlink > 1:
                raise ArchiveError("path", "invalid_archive",
                                   f"{source}: {path.relative_to(source)} is a hard link")
            yield path, info


def _copy_export_dir(source: Path, work: Path) -> None:
    """Copy an extracted export into `work`, checked entry by entry (see _export_entries)."""
    entries = list(_export_entries(source))
    _check_size(source, work, sum(info.st_size for _, info in entries if stat.S_ISREG(info.st_mode)))
    for path, info in entries:
        target = work / path.relative_to(source)
        if stat.S_ISDIR(info.st_mode):
            target.mkdir(mode=0o700, exist_ok=True)
            continue
        # O_NOFOLLOW: an entry swapped for a link after the check is not read through.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as src, open(target, "xb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.chmod(target, stat.S_IMODE(info.st_mode) & 0o700)


def check_unpacked(work: Path, source: Path) -> dict[str, Any]:
    """Check the manifest, the database and the volume files; migrate an older database."""
    try:
        manifest = json.loads((work / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ArchiveError("path", "invalid_archive", f"{source} is not a mail export (no manifest)") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError("path", "invalid_archive", f"{source}: unknown export format {manifest.get('format')!r}")
    db = work / "state" / "db" / "state.sqlite"
    if not db.is_file():
        raise ArchiveError("path", "invalid_archive", f"{source} has no state database")
    try:
        version = schema_version(db)
        ok = _quick_check(db)
    except sqlite3.DatabaseError as exc:
        raise ArchiveError("path", "invalid_archive", f"{source}: the state database is unreadable: {exc}") from exc
    if not ok:
        raise ArchiveError("path", "invalid_archive", f"{source}: the state database is damaged")
    if version > len(MIGRATIONS):
        raise ArchiveError("path", "archive_too_new",
                           f"{source} comes from a newer version ({manifest.get('version')}): upgrade first")
    if not isinstance(manifest.get("volumes", []), list):
        raise ArchiveError("path", "invalid_archive", f"{source}: the manifest's volumes is not a list")
    for purpose in manifest.get("volumes", []):
        if purpose not in DATA_VOLUMES or not (work / "volumes" / f"{purpose}.tar").is_file():
            raise ArchiveError("path", "invalid_archive", f"{source}: volume {purpose!r} is missing or unknown")
    Store(db).close()  # bring an older schema up to date
    return manifest


def schema_version(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def _quick_check(db: Path) -> bool:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        conn.close()
