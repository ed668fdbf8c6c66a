"""clone-module: copy another instance of this host (same state root) into this one, by
an export of it imported here. The runner holds both instances' action locks, taken in a
fixed order (runner.instance_locks): two opposite clones never wait for each other."""

from __future__ import annotations

from typing import Any

from ..engines import Engine, get_engine
from ..settings import Instance
from ..state import Store
from .archive import ArchiveError, unpack
from .transfer import export_instance, import_unpacked, no_progress, refuse_if_not_empty, workdir
from .volumes import Progress


def clone_instance(instance: Instance, store: Store, source_name: str, replace: bool = False,
                   engine: Engine | None = None, progress: Progress = no_progress) -> dict[str, Any]:
    """Copy the instance `source_name` (same host and state root) into `instance`.

    The caller holds both instances' action locks (runner.instance_locks).
    """
    if source_name == instance.name:
        raise ArchiveError("source", "same_instance", "an instance cannot be cloned into itself")
    source = Instance(name=source_name, state_root=instance.state_root, engine=instance.engine)
    if not source.db_path.exists():
        raise ArchiveError("source", "instance_not_found",
                           f"no instance {source_name} in {instance.state_root}")
    refuse_if_not_empty(instance, store, replace)
    engine = engine or get_engine(instance.engine)
    with workdir(instance, "clone") as work:
        archive = work / "clone.tar.gz"
        export_instance(source, archive, engine, progress)
        unpacked = work / "unpacked"
        unpacked.mkdir()
        manifest = unpack(archive, unpacked)
        archive.unlink()
        import_unpacked(instance, unpacked, manifest, engine, progress)
    return manifest
