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
A container in a crash loop (restarted again and again by the engine) is stopped and
started again after a growing delay, as is one that `up` could not bring back
(crashloop.py): a broken daemon never makes the engine or the watcher spin.
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

from . import crashloop, imapsync, lifecycle
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
    """Checks one instance; `check()` once, `serve()` for ever. `clock` and `sleep` are for the tests."""

    def __init__(self, instance: Instance, engine: Engine | None = None, log: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.instance = instance
        self.engine = engine or get_engine(instance.engine)
        self.log = log
        self.clock, self.sleep = clock, sleep
        self.suspects: set[str] = set()  # containers found down at the previous check
        self.history: dict[str, crashloop.RestartHistory] = {}  # restart counts seen, per container
        self.backoff: dict[str, crashloop.Backoff] = {}  # containers in a crash loop (or failing to start)

    def check(self) -> list[str]:
        """Heal what was already down at the previous check; return the containers healed.

        A container in a crash loop is stopped and started again only once its backoff
        delay is over; one that failed to come back waits its delay too."""
        now = self.clock()
        containers = self.engine.list_containers(self.instance.name)
        looping = self._new_crash_loops(containers, now)
        self._forgive_stable(containers, now)
        # one the engine restarted since the last look is its business (until it loops)
        restarting = {c.name for c in containers if self.history[c.name].grew}
        down = {c.name: why for c in containers
                if (why := broken(c)) and c.name not in looping and c.name not in restarting}
        waiting = {name for name in down if name in self.backoff and not self.backoff[name].due(now)}
        heal = {name: why for name, why in down.items()
                if name not in waiting and (name in self.suspects or name in self.backoff)}
        self.suspects = set(down) - set(heal) - waiting
        if not heal and not looping:
            self._save_held(waiting, now)
            return []
        with try_lock(self.instance) as locked:
            if not locked:
                self.suspects |= set(heal)  # an action runs: look again next time
                return []
            for name, restarts in sorted(looping.items()):
                delay = self.backoff.setdefault(name, crashloop.Backoff()).fail(now)
                self.log(f"watch: {name} is crash-looping ({restarts} restarts in {crashloop.LOOP_WINDOW:g} s): "
                         f"stopping it, next start in {delay:g} s (see `mailctl logs {name.rsplit('-', 1)[-1]}`)")
                self._hold(name)
                waiting.add(name)
            if heal:
                self._heal(heal, hold=waiting, now=now)
        self._save_held(waiting, now)
        return sorted(heal)

    def _hold(self, name: str, tries: int = 5) -> None:
        """Stop a looping container until it stays stopped: a stop that comes between two of
        podman's restarts finds it already stopped, and podman restarts it once more."""
        for _ in range(tries):
            try:
                self.engine.stop(name)
            except MailError as exc:
                self.log(f"watch: {exc}")
            before = self._container(name)
            self.sleep(1)
            after = self._container(name)
            if after is None or (after.state not in ("running", "restarting")
                                 and before is not None and after.restarts == before.restarts):
                return
        self.log(f"watch: {name} is still restarted by the engine after {tries} stops")

    def _container(self, name: str) -> ContainerInfo | None:
        return next((c for c in self.engine.list_containers(self.instance.name) if c.name == name), None)

    def _heal(self, heal: dict[str, str], hold: set[str], now: float) -> None:
        for name, why in sorted(heal.items()):
            self.log(f"watch: {name} is {why}: bringing it back")
        try:  # up starts what is stopped and recreates what is dead
            lifecycle.up(self.instance, progress=lambda m: self.log(f"watch: {m}"), hold=hold)
        except MailError as exc:
            delays = {name: self.backoff.setdefault(name, crashloop.Backoff()).fail(now) for name in heal}
            self.log(f"watch: {self.instance.name} did not come back: {exc}")
            for name, delay in sorted(delays.items()):
                self.log(f"watch: next try for {name} in {delay:g} s")

    def _new_crash_loops(self, containers: list[ContainerInfo], now: float) -> dict[str, int]:
        """Containers the engine restarted too often lately (name -> restarts in the window)."""
        looping = {}
        for c in containers:
            recent = self.history.setdefault(c.name, crashloop.RestartHistory()).add(now, c.restarts)
            if recent >= crashloop.LOOP_RESTARTS:
                looping[c.name] = recent
                self.history[c.name] = crashloop.RestartHistory()  # count afresh after the stop
        return looping

    def _forgive_stable(self, containers: list[ContainerInfo], now: float) -> None:
        """End the backoff of containers that have run STABLE seconds without a restart."""
        for c in containers:
            backoff, history = self.backoff.get(c.name), self.history.get(c.name)
            if backoff is None or history is None or c.state != "running" or broken(c):
                continue
            if now - max(history.last_restart, backoff.not_before) >= crashloop.STABLE:
                del self.backoff[c.name]
                self.log(f"watch: {c.name} has run {crashloop.STABLE:g} s without a crash: its backoff is over")

    def _save_held(self, waiting: set[str], now: float) -> None:
        """Tell `mailctl status` which containers wait out a backoff, and until when."""
        held = {name: {"failures": self.backoff[name].failures,
                       "next_start": crashloop.wall_time(self.backoff[name].not_before, now)}
                for name in sorted(waiting) if name in self.backoff}
        try:
            crashloop.write_held(self.instance.state_dir, held)
        except OSError as exc:
            self.log(f"watch: could not save the held containers: {exc}")

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
