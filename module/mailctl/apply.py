"""Apply the state to the daemons: render -> check -> swap -> reload, and undo it.

The rendered configuration lives in generation directories (see render.py). A
change is staged next to the current generation, checked by each changed
daemon's own tool inside its running container, swapped in atomically, then the
changed daemons reload. A marker file records an unfinished swap, so a process
killed half-way is repaired by the next action (`recover`).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .context import render_context
from .engines import Engine, get_engine
from .errors import MailError
from .faults import corrupt_staging
from .render import ConfigTree
from .settings import Instance
from .stack import DAEMONS, RELOAD_COMMAND
from .state import Store

log = logging.getLogger(__name__)

# Daemons that cannot reload their configuration live: their container restarts.
RESTART_ON_CHANGE = ("redis", "openldap")


class ConfigCheckFailed(MailError):
    """A daemon's own configuration check refused the rendered files."""


@dataclass
class Change:
    """A staged generation and what it changes."""

    staging: Path
    changed: list[str]
    previous: Path | None = None
    swapped: bool = False
    reloaded: list[str] = field(default_factory=list)


class Applier:
    """Renders and applies the configuration of one instance."""

    def __init__(self, instance: Instance, engine: Engine | None = None):
        self.instance = instance
        self.tree = ConfigTree(instance.config_dir)
        self._engine = engine
        self.marker = instance.state_dir / "apply-pending"

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = get_engine(self.instance.engine)
        return self._engine

    def running_daemons(self) -> set[str]:
        """Daemons whose container runs now (an instance that is down only gets files)."""
        try:
            return {c.daemon for c in self.engine.list_containers(self.instance.name) if c.state == "running"}
        except MailError:
            return set()

    def stage(self, store: Store, always: tuple[str, ...] = ()) -> Change:
        """Render the state (as seen by `store`'s open transaction) into a new generation."""
        staging = self.tree.stage(render_context(store))
        corrupt_staging(staging)
        changed = self.tree.changed_daemons(staging, DAEMONS)
        changed += [d for d in always if d not in changed]
        return Change(staging, changed)

    def check(self, change: Change) -> None:
        """Run each changed daemon's config check on the staged files, in its container."""
        running = self.running_daemons()
        for daemon in change.changed:
            if daemon not in running or daemon in RESTART_ON_CHANGE:
                continue
            staged = f"/config/{change.staging.name}/{daemon}"
            name = self.instance.container_name(daemon)
            code, out = self.engine.exec(name, [*RELOAD_COMMAND, "--check", staged])
            if code != 0:
                last = " ".join(out.strip().splitlines()[-3:])
                raise ConfigCheckFailed(f"{daemon} refused the new configuration: {last}")

    def swap(self, change: Change) -> None:
        """Make the staged generation current; remember the old one until commit."""
        self.marker.write_text(json.dumps({"staging": change.staging.name}))
        change.previous = self.tree.swap(change.staging)
        change.swapped = True

    def reload_daemon(self, daemon: str) -> None:
        """Apply the current files to one running daemon: reload it, or restart its container."""
        name = self.instance.container_name(daemon)
        if daemon in RESTART_ON_CHANGE:
            self.engine.restart(name)
            return
        code, out = self.engine.exec(name, list(RELOAD_COMMAND))
        if code != 0:
            raise MailError(f"{daemon} reload failed: {' '.join(out.strip().splitlines()[-3:])}")

    def reload_after_undo(self, daemons: Iterable[str]) -> None:
        """Reload the running `daemons` again once the files they read are put back.

        Used by every undo path (the rendered configuration, secrets, TLS files). A daemon
        that is not running reads the files when it starts; one whose reload fails is
        logged and left for its next reload, and the others are still reloaded.
        """
        running = self.running_daemons()
        for daemon in daemons:
            if daemon not in running:
                continue
            try:
                self.reload_daemon(daemon)
            except MailError as exc:
                # The files are back and the next reload picks them up; until then the
                # daemon runs the configuration of the failed action: say so.
                log.error("undo: %s still runs the new configuration, its reload failed: %s", daemon, exc)

    def reload(self, change: Change) -> None:
        """Reload (or restart) every changed daemon that is running."""
        running = self.running_daemons()
        for daemon in change.changed:
            if daemon in running:
                self.reload_daemon(daemon)
                change.reloaded.append(daemon)

    def finish(self, change: Change) -> None:
        """The state is committed: drop the marker and older generations."""
        self.marker.unlink(missing_ok=True)
        self.tree.prune()

    def undo(self, change: Change) -> None:
        """Put the previous files back and reload what was reloaded with the new ones."""
        if change.swapped:
            self.tree.restore(change.previous, change.staging)
            self.reload_after_undo(change.reloaded)
        else:
            shutil.rmtree(change.staging, ignore_errors=True)
        self.marker.unlink(missing_ok=True)

    def recover(self, store: Store) -> list[str]:
        """After a crash: make files and daemons match the committed state again."""
        leftovers = [g for g in self.instance.config_dir.glob("gen-*") if g != self.tree.current()]
        if not self.marker.exists() and not leftovers:
            return []
        change = self.stage(store)
        if change.changed:
            self.swap(change)
            self.reload(change)
        else:
            shutil.rmtree(change.staging, ignore_errors=True)
        self.finish(change)
        return change.changed

