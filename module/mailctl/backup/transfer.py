"""Export an instance to an archive, and import an archive into an instance (see the
package docstring): the archive format, the volumes and the state files put together."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import lifecycle
from ..domains import list_domains
from ..engines import Engine, get_engine
from ..errors import MailError
from ..settings import Instance
from ..stack import build_stack
from ..state import Store
from .archive import MANIFEST, ArchiveError, new_manifest, resolve_backup, unpack, write_archive
from .statefiles import copy_database, drop_old_state, remove_path, swap_state, unswap_state
from .volumes import Progress, export_volumes, import_volumes


def no_progress(_: str) -> None:
    pass


def export_instance(instance: Instance, dest: Path, engine: Engine | None = None,
                    progress: Progress = no_progress) -> dict[str, Any]:
    """Write the archive of `instance` to `dest` (mode 0600); return its manifest.

    The caller holds the instance's action lock (runner.instance_lock).
    """
    dest = dest.absolute()
    if not dest.parent.is_dir():
        raise MailError(f"cannot write {dest}: {dest.parent} is not a directory")
    with workdir(instance, "export") as work:
        manifest = export_to_directory(instance, work, engine, progress)
        progress(f"writing {dest}")
        write_archive(dest, [(work / MANIFEST, MANIFEST), (work / "state", "state"), (work / "volumes", "volumes")])
    return manifest


def export_to_directory(instance: Instance, work: Path, engine: Engine | None = None,
                        progress: Progress = no_progress, pause: bool = False) -> dict[str, Any]:
    """Write the unpacked export of `instance` into the empty directory `work` (what
    `unpack` makes of an archive): manifest.json, state/{db,secrets,tls}, volumes/*.tar.

    `pause`: see volumes.export_volumes. The caller holds the instance's action lock.
    """
    if not instance.db_path.exists():
        raise MailError(f"instance {instance.name} has no state in {instance.state_dir}")
    engine = engine or get_engine(instance.engine)
    db_copy = work / "state" / "db" / "state.sqlite"
    db_copy.parent.mkdir(parents=True)
    copy_database(instance.db_path, db_copy)
    for part, source in (("secrets", instance.secrets_dir), ("tls", instance.tls_dir)):
        if source.exists():
            shutil.copytree(source, work / "state" / part, symlinks=True)
    volumes = work / "volumes"
    volumes.mkdir()
    manifest = new_manifest(instance.name, db_copy, export_volumes(instance, engine, volumes, progress, pause))
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def has_data(store: Store) -> bool:
    """An instance already configured or with mail domains: an import must be asked to replace it."""
    return bool(store.get("configured")) or bool(list_domains(store))


def import_unpacked(instance: Instance, work: Path, manifest: dict[str, Any], engine: Engine | None = None,
                    progress: Progress = no_progress) -> None:
    """Replace the instance's volumes and state by the unpacked export in `work`.

    The caller holds the instance's action lock. The containers are removed first and,
    if they were running, started again at the end (and on failure, with the old state).
    """
    engine = engine or get_engine(instance.engine)
    was_running = any(c.state == "running" for c in engine.list_containers(instance.name))
    progress(f"stopping {instance.name}")
    lifecycle.down(instance, progress=progress)
    swapped: list[tuple[Path, Path]] = []
    try:
        labels = build_stack(instance, "import.invalid").labels
        import_volumes(instance, engine, work / "volumes", manifest.get("volumes", []), labels, progress)
        swapped = swap_state(instance, work / "state")
        # Secrets an older export lacks are made, the configuration rendered from the new state.
        store, _, _ = lifecycle.prepare(instance)
        store.close()
        if was_running:
            lifecycle.up(instance, progress=progress)
    except BaseException:
        unswap_state(swapped)
        if was_running:
            try:
                lifecycle.up(instance, progress=progress)
            except MailError:
                pass  # the first error is the one to report
        raise
    drop_old_state(swapped)


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
        remove_path(path)
    return stale


@contextmanager
def workdir(instance: Instance, what: str) -> Iterator[Path]:
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


def refuse_if_not_empty(instance: Instance, store: Store, replace: bool) -> None:
    """An instance with data is only overwritten when asked to (`replace`)."""
    if not replace and has_data(store):
        raise ArchiveError("replace", "instance_not_empty",
                           f"instance {instance.name} is already configured: set replace to overwrite it")


def import_archive(instance: Instance, store: Store, request: ImportRequest, engine: Engine | None = None,
                   progress: Progress = no_progress) -> dict[str, Any]:
    """Resolve, check and import an export into `instance`; return its manifest.

    Raises ArchiveError (a field to blame) for a bad path, snapshot or archive, and for
    an instance that has data while `replace` is false.
    """
    source = resolve_backup(request.path, request.snapshot)
    refuse_if_not_empty(instance, store, request.replace)
    with workdir(instance, "import") as work:
        manifest = unpack(source, work)
        import_unpacked(instance, work, manifest, engine, progress)
    return manifest
