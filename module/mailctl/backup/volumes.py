"""The data volumes of an export: each one as a tar (owners and modes kept), without the
caches a daemon rebuilds by itself, and back into the volumes on import."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..engines import Engine
from ..errors import MailError
from ..settings import Instance
from ..stack import DAEMONS, redis_cli

# Volumes holding data (stack.VOLUMES purposes); the ClamAV signatures are not data.
DATA_VOLUMES = ("vmail", "queue", "ldap", "rspamd", "redis")
# Caches a daemon rebuilds by itself (Rspamd's compiled Hyperscan regexps: tens of MB).
DERIVED_FILES: dict[str, tuple[str, ...]] = {"rspamd": (".hs", ".hs.unser", ".hsmp")}

# The daemon that renames files in a volume: paused while a backup copies it, if asked.
VOLUME_WRITERS = {"vmail": "dovecot", "queue": "postfix"}

Progress = Callable[[str], None]


def export_volumes(instance: Instance, engine: Engine, dest: Path, progress: Progress,
                   pause: bool = False) -> list[str]:
    """Write <dest>/<purpose>.tar for every data volume (an empty tar for one never made).

    `pause` freezes the daemon writing a volume (Dovecot, Postfix) while it is copied, so
    that no maildir or queue file is renamed under the copy (seconds; SMTP clients and LMTP
    deliveries wait meanwhile, nothing is lost).
    """
    save_redis(instance, engine)
    existing = set(engine.list_volumes(instance.name))
    running = {c.name for c in engine.list_containers(instance.name) if c.state == "running"}
    helper = helper_image(instance, engine)
    for purpose in DATA_VOLUMES:
        name = instance.volume_name(purpose)
        target = dest / f"{purpose}.tar"
        progress(f"exporting volume {name}")
        if name in existing:
            writer = instance.container_name(VOLUME_WRITERS[purpose]) if purpose in VOLUME_WRITERS else None
            with _paused(engine, writer if pause and writer in running else None):
                engine.export_volume(name, target, helper)
            if purpose in DERIVED_FILES:
                drop_members(target, DERIVED_FILES[purpose])
        else:
            with tarfile.open(target, "w"):
                pass  # never started: an empty volume
    return list(DATA_VOLUMES)


@contextmanager
def _paused(engine: Engine, container: str | None) -> Iterator[None]:
    """Freeze `container` (if any) for the duration of the block."""
    if container is None:
        yield
        return
    engine.pause(container)
    try:
        yield
    finally:
        engine.unpause(container)


def import_volumes(instance: Instance, engine: Engine, source: Path, purposes: list[str],
                   labels: dict[str, Any], progress: Progress) -> None:
    """Replace each volume of `purposes` by the content of <source>/<purpose>.tar."""
    helper = helper_image(instance, engine)
    for purpose in purposes:
        progress(f"importing volume {instance.volume_name(purpose)}")
        engine.import_volume(instance.volume_name(purpose), source / f"{purpose}.tar", labels, helper)


def save_redis(instance: Instance, engine: Engine) -> None:
    """Make Redis write its data set to its volume now, if it runs."""
    name = instance.container_name("redis")
    if any(c.name == name and c.state == "running" for c in engine.list_containers(instance.name)):
        code, out = engine.exec(name, redis_cli("SAVE"))
        if code != 0:
            raise MailError(f"redis could not save its data set: {out.strip()[-200:]}")


def drop_members(tar_path: Path, suffixes: tuple[str, ...]) -> None:
    """Rewrite a volume tar without the files whose names end with `suffixes`."""
    kept = tar_path.with_name(tar_path.name + ".kept")
    with tarfile.open(tar_path) as src, tarfile.open(kept, "w", format=src.format) as dst:
        for member in src:
            if member.isfile() and member.name.endswith(suffixes):
                continue
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    os.replace(kept, tar_path)


def helper_image(instance: Instance, engine: Engine) -> str:
    """An image of the instance with GNU tar, for engines that copy volumes with a container
    (one that is missing only matters to those engines, which then say so)."""
    for daemon in DAEMONS:
        if engine.image_exists(instance.image(daemon)):
            return instance.image(daemon)
    return instance.image("redis")
