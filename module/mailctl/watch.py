"""`mailctl watch`: bring back the containers of an instance that stay down.

The engines restart a container whose daemon dies (restart policy unless-stopped, see
stack.py), but not:
- a container stopped or killed through the engine (`podman kill -s KILL`, `docker stop`):
  both engines record it as a wanted stop;
- a podman container whose conmon (the process that watches it) died: podman keeps
  showing it running, and nobody notices when its daemon dies (even `podman restart`
  fails then; only removing it helps).

mailctl's own way to stop an instance, `mailctl down`, removes its containers: so a
container of the instance that exists and does not run is never wanted. The watcher (one
process per instance, the systemd unit mailctl-watch@.service) looks every few seconds;
a container found down twice in a row (the engine's own restart comes first) makes it
run `up`, which starts the stopped ones, recreates the dead ones and waits for health.
It acts only while it holds the instance's action lock: never during an action, an
import or `mailctl down`.

The watcher also runs the instance's IMAP sync jobs when they are due (imapsync.py), in a
thread of its own every 30 s, so that a long sync never delays the healing.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import imapsync, lifecycle
from .engines import ContainerInfo, Engine, get_engine
from .errors import MailError
from .settings import Instance


def broken(info: ContainerInfo) -> str | None:
    """Why the container needs help ("stopped", "dead"), or None when it runs."""
    if info.state in ("exited", "stopped", "created", "dead"):
        return "stopped"
    if info.lost:
        return "dead"
    return None


@contextmanager
def try_lock(instance: Instance) -> Iterator[bool]:
    """The instance's action lock if it is free now (True), else nothing (False)."""
    instance.state_dir.mkdir(parents=True, exist_ok=True)
    with open(instance.lock_path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Watcher:
    """Checks one instance; `check()` once, `serve()` for ever."""

    def __init__(self, instance: Instance, engine: Engine | None = None, log: Callable[[str], None] = print):
        self.instance = instance
        self.engine = engine or get_engine(instance.engine)
        self.log = log
        self.suspects: set[str] = set()  # containers found down at the previous check

    def check(self) -> list[str]:
        """Heal what was already down at the previous check; return the containers healed."""
        down = {c.name: why for c in self.engine.list_containers(self.instance.name) if (why := broken(c))}
        heal = {name: why for name, why in down.items() if name in self.suspects}
        self.suspects = set(down) - set(heal)
        if not heal:
            return []
        with try_lock(self.instance) as locked:
            if not locked:
                self.suspects |= set(heal)  # an action runs: look again next time
                return []
            for name, why in sorted(heal.items()):
                self.log(f"watch: {name} is {why}: bringing it back")
            try:  # up starts what is stopped and recreates what is dead
                lifecycle.up(self.instance, progress=lambda m: self.log(f"watch: {m}"))
            except MailError as exc:
                self.log(f"watch: {self.instance.name} did not come back: {exc}")
        return sorted(heal)

    def serve(self, interval: float = 5.0, sync_interval: float = 30.0) -> None:
        self.log(f"watch: keeping {self.instance.name}'s containers running (every {interval:g} s)")
        threading.Thread(target=self.run_sync_jobs, args=(sync_interval,), daemon=True).start()
        while True:
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - an engine hiccup must not end the watch
                self.log(f"watch: {exc}")
            time.sleep(interval)

    def run_sync_jobs(self, interval: float) -> None:
        """For ever: run the IMAP sync jobs that are due (their own engine client: another thread)."""
        while True:
            try:
                for job_id in imapsync.run_due_jobs(self.instance):
                    self.log(f"watch: sync job {job_id}: {imapsync.read_status(self.instance, job_id)['state']}")
            except Exception as exc:  # noqa: BLE001 - a failing job must not end the watch
                self.log(f"watch: sync jobs: {exc}")
            time.sleep(interval)
