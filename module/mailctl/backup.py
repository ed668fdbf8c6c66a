"""Move an instance's data and state: export to an archive, import an archive.

An export archive is a gzip'd tar, created mode 0600 (it holds the instance's secrets):

    manifest.json             format, source instance, version, schema version, date, volumes
    state/db/state.sqlite     a consistent copy of the state database (SQLite backup API)
    state/secrets/...         passwords, DKIM keys, relay and LDAP bind credentials
    state/tls/...             the TLS certificate and key
    volumes/<purpose>.tar     the content of each data volume, owners and modes kept

The rendered configuration is not exported: it is derived from the state and rendered
again on import. Neither are the ClamAV signatures (downloaded or shipped with the image).

The export is hot: it holds the instance's action lock (so the state and the LDAP tree
do not change), asks Redis to save its data set first, and copies the mail and the queue
as they are (a message arriving during the export may be missing from the archive).

The import replaces the whole instance: it stops the containers, replaces every data
volume and the state, renders the configuration, and starts the instance again if it
was running. An archive is read and checked completely before anything is replaced; the
state files are put back if a later step fails, the volumes already replaced are not.
The actions import-module, restore-module and clone-module and the commands
`mailctl export` / `mailctl import` share this code.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__, lifecycle
from .domains import list_domains
from .engines import Engine, get_engine
from .errors import MailError
from .settings import Instance
from .stack import DAEMONS, build_stack
from .state import MIGRATIONS, Store

FORMAT = 1
MANIFEST = "manifest.json"
# Directories of the instance's state dir that make up its state (config/ is derived).
STATE_PARTS = ("db", "secrets", "tls")
# Volumes holding data (stack.VOLUMES purposes); the ClamAV signatures are not data.
DATA_VOLUMES = ("vmail", "queue", "ldap", "rspamd", "redis")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
# Caches a daemon rebuilds by itself (Rspamd's compiled Hyperscan regexps: tens of MB).
DERIVED_FILES: dict[str, tuple[str, ...]] = {"rspamd": (".hs", ".hs.unser", ".hsmp")}

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class ArchiveError(MailError):
    """The given path is not a usable export: `error` is the NS8 error code for its field."""

    def __init__(self, field: str, error: str, message: str):
        super().__init__(message)
        self.field = field
        self.error = error


# ---------------------------------------------------------------- export


def export_instance(instance: Instance, dest: Path, engine: Engine | None = None,
                    progress: Progress = _quiet) -> dict[str, Any]:
    """Write the archive of `instance` to `dest` (mode 0600); return its manifest.

    The caller holds the instance's action lock (runner.instance_lock).
    """
    if not instance.db_path.exists():
        raise MailError(f"instance {instance.name} has no state in {instance.state_dir}")
    dest = dest.absolute()
    if not dest.parent.is_dir():
        raise MailError(f"cannot write {dest}: {dest.parent} is not a directory")
    engine = engine or get_engine(instance.engine)
    with _workdir(instance, "export") as work:
        db_copy = work / "db" / "state.sqlite"
        db_copy.parent.mkdir()
        _copy_database(instance.db_path, db_copy)
        volumes = work / "volumes"
        volumes.mkdir()
        _save_redis(instance, engine)
        existing = set(engine.list_volumes(instance.name))
        helper = _helper_image(instance, engine)
        for purpose in DATA_VOLUMES:
            name = instance.volume_name(purpose)
            target = volumes / f"{purpose}.tar"
            progress(f"exporting volume {name}")
            if name in existing:
                engine.export_volume(name, target, helper)
                if purpose in DERIVED_FILES:
                    _drop_members(target, DERIVED_FILES[purpose])
            else:
                with tarfile.open(target, "w"):
                    pass  # never started: an empty volume
        manifest = {
            "format": FORMAT, "instance": instance.name, "version": __version__,
            "schema_version": _schema_version(db_copy), "volumes": list(DATA_VOLUMES),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        progress(f"writing {dest}")
        _write_archive(dest, [
            (work / MANIFEST, MANIFEST),
            (db_copy.parent, "state/db"),
            (instance.secrets_dir, "state/secrets"),
            (instance.tls_dir, "state/tls"),
            (volumes, "volumes"),
        ])
    return manifest


def _copy_database(source: Path, dest: Path) -> None:
    """A consistent copy, even while another process writes (SQLite backup API)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _save_redis(instance: Instance, engine: Engine) -> None:
    """Make Redis write its data set to its volume now, if it runs."""
    name = instance.container_name("redis")
    if any(c.name == name and c.state == "running" for c in engine.list_containers(instance.name)):
        code, out = engine.exec(name, ["redis-cli", "SAVE"])
        if code != 0:
            raise MailError(f"redis could not save its data set: {out.strip()[-200:]}")


def _drop_members(tar_path: Path, suffixes: tuple[str, ...]) -> None:
    """Rewrite a volume tar without the files whose names end with `suffixes`."""
    kept = tar_path.with_name(tar_path.name + ".kept")
    with tarfile.open(tar_path) as src, tarfile.open(kept, "w", format=src.format) as dst:
        for member in src:
            if member.isfile() and member.name.endswith(suffixes):
                continue
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    os.replace(kept, tar_path)


def _write_archive(dest: Path, members: list[tuple[Path, str]]) -> None:
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


# ---------------------------------------------------------------- reading an archive


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
    """Extract (or copy) an export into `work` and check it; return its manifest."""
    if source.is_dir():
        for item in (MANIFEST, "state", "volumes"):
            if (source / item).is_dir():
                shutil.copytree(source / item, work / item, symlinks=True)
            elif (source / item).is_file():
                shutil.copy2(source / item, work / item)
    else:
        try:
            with tarfile.open(source, "r:*") as tar:
                tar.extractall(work, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArchiveError("path", "invalid_archive", f"{source} is not a readable archive: {exc}") from exc
    return check_unpacked(work, source)


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
        version = _schema_version(db)
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


def _schema_version(db: Path) -> int:
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


# ---------------------------------------------------------------- import


def has_data(store: Store) -> bool:
    """An instance already configured or with mail domains: an import must be asked to replace it."""
    return bool(store.get("configured")) or bool(list_domains(store))


def import_unpacked(instance: Instance, work: Path, manifest: dict[str, Any], engine: Engine | None = None,
                    progress: Progress = _quiet) -> None:
    """Replace the instance's volumes and state by the unpacked export in `work`.

    The caller holds the instance's action lock. The containers are removed first and,
    if they were running, started again at the end (and on failure, with the old state).
    """
    engine = engine or get_engine(instance.engine)
    helper = _helper_image(instance, engine)
    was_running = any(c.state == "running" for c in engine.list_containers(instance.name))
    progress(f"stopping {instance.name}")
    lifecycle.down(instance, progress=progress)
    swapped: list[tuple[Path, Path]] = []
    try:
        labels = build_stack(instance, "import.invalid").labels
        for purpose in manifest.get("volumes", []):
            progress(f"importing volume {instance.volume_name(purpose)}")
            engine.import_volume(instance.volume_name(purpose), work / "volumes" / f"{purpose}.tar", labels, helper)
        swapped = _swap_state(instance, work / "state")
        # Secrets an older export lacks are made, the configuration rendered from the new state.
        store, _, _ = lifecycle.prepare(instance)
        store.close()
        if was_running:
            lifecycle.up(instance, progress=progress)
    except BaseException:
        _unswap_state(swapped)
        if was_running:
            try:
                lifecycle.up(instance, progress=progress)
            except MailError:
                pass  # the first error is the one to report
        raise
    for _, old in swapped:
        _remove(old)


def _swap_state(instance: Instance, new_state: Path) -> list[tuple[Path, Path]]:
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
        _unswap_state(swapped)
        raise
    return swapped


def _unswap_state(swapped: list[tuple[Path, Path]]) -> None:
    for current, old in reversed(swapped):
        _remove(current)
        if old.exists():
            os.replace(old, current)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _harden_secrets(secrets_dir: Path) -> None:
    """Secret files 0600 and directories 0700, whatever the archive said."""
    if not secrets_dir.exists():
        return
    os.chmod(secrets_dir, 0o700)
    for root, dirs, files in os.walk(secrets_dir):
        for d in dirs:
            os.chmod(Path(root) / d, 0o700)
        for f in files:
            os.chmod(Path(root) / f, 0o600)


# ---------------------------------------------------------------- shared helpers


def _helper_image(instance: Instance, engine: Engine) -> str:
    """An image of the instance with GNU tar, for engines that copy volumes with a container
    (one that is missing only matters to those engines, which then say so)."""
    for daemon in DAEMONS:
        if engine.image_exists(instance.image(daemon)):
            return instance.image(daemon)
    return instance.image("redis")


def work_root(instance: Instance) -> Path:
    """Where the instance's exports, imports and clones unpack: <state root>/.work/<instance>."""
    return instance.state_root / ".work" / instance.name


def clean_stale_workdirs(instance: Instance) -> list[Path]:
    """Remove the scratch directories a killed export, import or clone left behind.

    Only called with the instance's action lock held: no live process of this instance
    uses them then. Returns what was removed.
    """
    root = work_root(instance)
    stale = sorted(root.iterdir()) if root.is_dir() else []
    for path in stale:
        _remove(path)
    return stale


@contextmanager
def _workdir(instance: Instance, what: str) -> Iterator[Path]:
    """A private (0700) scratch directory beside the instance's state: same filesystem.

    A process killed while it works here cannot remove it: the next export, import or
    clone of the instance does (the caller holds the instance's lock).
    """
    root = work_root(instance)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    clean_stale_workdirs(instance)
    work = Path(tempfile.mkdtemp(prefix=f"{what}-", dir=root))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class ImportRequest:
    """What import-module, restore-module and the import command ask for."""

    path: Path
    snapshot: str | None = None
    replace: bool = False


def import_archive(instance: Instance, store: Store, request: ImportRequest, engine: Engine | None = None,
                   progress: Progress = _quiet) -> dict[str, Any]:
    """Resolve, check and import an export into `instance`; return its manifest.

    Raises ArchiveError (a field to blame) for a bad path, snapshot or archive, and for
    an instance that has data while `replace` is false.
    """
    source = resolve_backup(request.path, request.snapshot)
    if not request.replace and has_data(store):
        raise ArchiveError("replace", "instance_not_empty",
                           f"instance {instance.name} is already configured: set replace to overwrite it")
    with _workdir(instance, "import") as work:
        manifest = unpack(source, work)
        import_unpacked(instance, work, manifest, engine, progress)
    return manifest


def clone_instance(instance: Instance, store: Store, source_name: str, replace: bool = False,
                   engine: Engine | None = None, progress: Progress = _quiet) -> dict[str, Any]:
    """Copy the instance `source_name` (same host and state root) into `instance`."""
    from .runner import instance_lock

    if source_name == instance.name:
        raise ArchiveError("source", "same_instance", "an instance cannot be cloned into itself")
    source = Instance(name=source_name, state_root=instance.state_root, engine=instance.engine)
    if not source.db_path.exists():
        raise ArchiveError("source", "instance_not_found",
                           f"no instance {source_name} in {instance.state_root}")
    if not replace and has_data(store):
        raise ArchiveError("replace", "instance_not_empty",
                           f"instance {instance.name} is already configured: set replace to overwrite it")
    engine = engine or get_engine(instance.engine)
    with _workdir(instance, "clone") as work:
        archive = work / "clone.tar.gz"
        with instance_lock(source):
            export_instance(source, archive, engine, progress)
        unpacked = work / "unpacked"
        unpacked.mkdir()
        manifest = unpack(archive, unpacked)
        archive.unlink()
        import_unpacked(instance, unpacked, manifest, engine, progress)
    return manifest
