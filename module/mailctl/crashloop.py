"""Crash loops: how `mailctl watch` tells one apart and spaces out its restarts.

Podman's restart policy (unless-stopped) starts a container again at once, for ever: a
daemon that dies at start (a broken configuration, a full disk) then burns a core in a
loop. Docker backs off by itself, but only up to a minute between tries. The watcher
notices a container the engine restarted LOOP_RESTARTS times within LOOP_WINDOW seconds,
stops it (a wanted stop: the engine leaves it alone) and starts it again itself after a
delay that doubles at every new loop (FIRST_DELAY up to MAX_DELAY). A container that then
runs STABLE seconds without a crash is forgiven: its next loop starts at FIRST_DELAY again.

The containers the watcher holds stopped are written to the instance's `watch-held.json`,
so that `mailctl status` shows them as `crash-loop` with the time of their next start.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

LOOP_RESTARTS = 3  # engine restarts...
LOOP_WINDOW = 60.0  # ...within this many seconds make a crash loop
FIRST_DELAY = 10.0  # seconds before the watcher's first start of a looping container
MAX_DELAY = 600.0  # the longest wait between two starts
STABLE = 300.0  # seconds running without a restart that end the backoff
HELD_FILE = "watch-held.json"


@dataclass
class Backoff:
    """Exponential delays between the watcher's starts of one container."""

    first: float = FIRST_DELAY
    cap: float = MAX_DELAY
    failures: int = 0
    not_before: float = 0.0  # clock time of the next start allowed

    def fail(self, now: float) -> float:
        """One more failure at `now`: the delay (s) before the next start."""
        self.failures += 1
        delay = min(self.cap, self.first * 2 ** (self.failures - 1))
        self.not_before = now + delay
        return delay

    def due(self, now: float) -> bool:
        return now >= self.not_before


@dataclass
class RestartHistory:
    """The engine's restart counts of one container, seen over time."""

    window: float = LOOP_WINDOW
    samples: deque = field(default_factory=deque)  # (time, restart count)
    last_restart: float = 0.0  # when the count last grew (clock time)
    grew: bool = False  # the count grew since the previous look: the engine is restarting it

    def add(self, now: float, restarts: int) -> int:
        """Record a look; return the restarts within the window (0 after a reset by hand)."""
        if self.samples and restarts < self.samples[-1][1]:
            # a start by hand since the last look reset the engine's count: all are new
            self.samples.clear()
            self.samples.append((now, 0))
        self.grew = bool(self.samples) and restarts > self.samples[-1][1]
        if self.grew:
            self.last_restart = now
        self.samples.append((now, restarts))
        while self.samples and self.samples[0][0] < now - self.window:
            self.samples.popleft()
        return restarts - self.samples[0][1]


def held_path(state_dir: Path) -> Path:
    return state_dir / HELD_FILE


def write_held(state_dir: Path, held: dict[str, dict]) -> None:
    """Save {container: {"failures": n, "next_start": epoch seconds}} atomically ({} removes it)."""
    path = held_path(state_dir)
    if not held:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(held, indent=1, sort_keys=True))
    os.replace(tmp, path)


def read_held(state_dir: Path) -> dict[str, dict]:
    """The containers the watcher holds stopped ({} when none, or no watcher wrote yet)."""
    try:
        return json.loads(held_path(state_dir).read_text())
    except (OSError, ValueError):
        return {}


def wall_time(clock_time: float, clock_now: float) -> float:
    """A time of the watcher's monotonic clock as epoch seconds (for other processes)."""
    return time.time() + (clock_time - clock_now)
