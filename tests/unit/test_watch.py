"""mailctl watch: which containers it considers down, that it waits one look first, and its
backoff of crash loops (a real engine is not needed: the engine and `up` are stand-ins)."""

from __future__ import annotations

import os

import pytest

from mailctl import crashloop, watch
from mailctl.crashloop import Backoff, RestartHistory
from mailctl.engines import ContainerInfo
from mailctl.errors import MailError
from mailctl.settings import Instance
from mailctl.watch import Watcher, broken


def test_stopped_and_dead_containers_are_broken_running_ones_are_not():
    assert ContainerInfo("i-dovecot", "running", pid=2**22 + 12345).lost
    assert not ContainerInfo("i-dovecot", "exited", pid=2**22 + 12345).lost
    assert broken(ContainerInfo("i-dovecot", "exited")) == "stopped"
    assert broken(ContainerInfo("i-dovecot", "running", pid=os.getpid())) is None
    assert broken(ContainerInfo("i-dovecot", "running", pid=2**22 + 12345)) == "dead"  # no such process
    assert broken(ContainerInfo("i-dovecot", "running")) is None  # pid unknown: trust the engine


class FakeEngine:
    """Only list_containers: the watcher must not act at the first look."""

    def __init__(self, containers):
        self.containers = containers

    def list_containers(self, instance):
        return self.containers


def test_a_container_found_down_once_is_left_to_the_engine_restart_policy(tmp_path):
    engine = FakeEngine([ContainerInfo("w1-dovecot", "exited")])
    watcher = Watcher(Instance("w1", state_root=tmp_path), engine=engine, log=lambda m: None)
    assert watcher.check() == []  # first look: the engine may be restarting it
    engine.containers = [ContainerInfo("w1-dovecot", "running", pid=os.getpid())]
    assert watcher.check() == [] and watcher.suspects == set()


# ---- crash loops: backoff instead of a busy loop ----------------------------------------


def test_backoff_doubles_up_to_its_cap():
    backoff = Backoff(first=10, cap=600)
    assert [backoff.fail(now=0) for _ in range(8)] == [10, 20, 40, 80, 160, 320, 600, 600]
    assert not backoff.due(599) and backoff.due(600)


def test_restart_history_counts_restarts_within_the_window_and_a_reset_by_hand():
    history = RestartHistory(window=60)
    assert [history.add(t, n) for t, n in ((0, 0), (5, 2), (10, 4))] == [0, 2, 4]
    assert history.last_restart == 10 and history.grew
    assert history.add(80, 4) == 0  # nothing new within the last minute
    assert history.add(85, 0) == 0  # a start by hand reset the engine's count
    assert history.add(90, 3) == 3


class LoopingEngine(FakeEngine):
    """A container whose daemon dies at every start: the engine restarts it until stopped."""

    def __init__(self, name="w1-rspamd"):
        super().__init__([ContainerInfo(name, "running", pid=os.getpid())])
        self.stopped: list[str] = []

    def crash(self, times=1):
        c = self.containers[0]
        if c.state == "running":
            c.restarts += times

    def stop(self, name):
        self.stopped.append(name)
        self.containers[0].state = "exited"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def looping(tmp_path, monkeypatch):
    """A watcher on LoopingEngine; `ups` records the holds of each lifecycle.up call."""
    engine, clock, logs, ups = LoopingEngine(), Clock(), [], []

    def fake_up(instance, progress, hold=()):
        ups.append(set(hold))
        engine.containers[0].state = "running"
        engine.containers[0].restarts = 0  # a start by hand resets the count

    monkeypatch.setattr(watch.lifecycle, "up", fake_up)
    watcher = Watcher(Instance("w1", state_root=tmp_path), engine=engine, log=logs.append, clock=clock,
                      sleep=lambda seconds: None)
    return watcher, engine, clock, logs, ups


def test_a_crash_loop_is_stopped_and_started_again_after_a_growing_delay(looping):
    watcher, engine, clock, logs, ups = looping
    watcher.check()
    engine.crash(times=5)  # podman restarts it at once, again and again
    clock.now += 5
    watcher.check()
    assert engine.stopped == ["w1-rspamd"]
    assert any("w1-rspamd is crash-looping (5 restarts in 60 s): stopping it, next start in 10 s" in m for m in logs)
    held = crashloop.read_held(watcher.instance.state_dir)
    assert held["w1-rspamd"]["failures"] == 1

    for _ in range(9):  # checks every second during the delay: nothing started, no busy loop
        clock.now += 1
        assert watcher.check() == []
    assert ups == []
    clock.now += 1
    assert watcher.check() == ["w1-rspamd"]  # the delay is over: started again
    assert ups == [set()] and crashloop.read_held(watcher.instance.state_dir) == {}

    engine.crash(times=4)  # still broken: a second loop waits twice as long
    clock.now += 5
    watcher.check()
    assert engine.stopped == ["w1-rspamd"] * 2 and "next start in 20 s" in logs[-1]
    clock.now += 19
    assert watcher.check() == [] and len(ups) == 1
    clock.now += 1
    assert watcher.check() == ["w1-rspamd"] and len(ups) == 2


def test_a_container_running_long_enough_after_a_loop_starts_afresh(looping):
    watcher, engine, clock, logs, ups = looping
    watcher.check()
    engine.crash(times=3)
    clock.now += 5
    watcher.check()
    clock.now += 10
    assert watcher.check() == ["w1-rspamd"]
    for _ in range(int(crashloop.STABLE // 5) + 1):  # runs without a crash
        clock.now += 5
        watcher.check()
    assert "w1-rspamd" not in watcher.backoff and "its backoff is over" in logs[-1]
    engine.crash(times=3)
    clock.now += 5
    watcher.check()
    assert "next start in 10 s" in logs[-1]  # the first delay again


def test_a_container_up_cannot_bring_back_waits_before_the_next_try(looping, monkeypatch):
    watcher, engine, clock, logs, ups = looping
    calls = []

    def failing_up(instance, progress, hold=()):
        calls.append(clock.now)
        raise MailError("rspamd did not come up (container exited)")

    monkeypatch.setattr(watch.lifecycle, "up", failing_up)
    engine.containers[0].state = "exited"  # stopped through the engine, no restarts
    for _ in range(60):
        watcher.check()
        clock.now += 1
    # first look, then tries at +1 s, +11 s (10 s later), +31 s (20 s later)
    assert calls == [1001.0, 1011.0, 1031.0], calls
    assert "next try for w1-rspamd in 40 s" in logs[-1]


def test_a_container_the_engine_keeps_restarting_is_not_healed_by_up(looping):
    """Seen stopped twice but restarted by the engine in between: not `up`'s to heal (it would
    wait for health while the engine loops), the crash loop is caught instead."""
    watcher, engine, clock, logs, ups = looping
    watcher.check()
    for _ in range(2):
        engine.containers[0].restarts += 1
        engine.containers[0].state = "stopped"  # podman, between two of its restarts
        clock.now += 1
        assert watcher.check() == []
    engine.containers[0].restarts += 1
    clock.now += 1
    watcher.check()
    assert ups == [] and engine.stopped == ["w1-rspamd"]


def test_a_stop_between_two_engine_restarts_is_repeated(looping):
    """podman restarts a container once more when the stop finds it between two restarts."""
    watcher, engine, clock, logs, ups = looping
    stop = engine.stop
    missed = []

    def stop_once_too_early(name):
        stop(name)
        if not missed:  # the engine's pending restart goes ahead
            missed.append(name)
            engine.containers[0].state, engine.containers[0].restarts = "running", engine.containers[0].restarts + 1

    engine.stop = stop_once_too_early
    watcher.check()
    engine.crash(times=3)
    clock.now += 1
    watcher.check()
    assert engine.stopped == ["w1-rspamd", "w1-rspamd"] and engine.containers[0].state == "exited"
    assert crashloop.read_held(watcher.instance.state_dir)["w1-rspamd"]["failures"] == 1


def test_other_containers_heal_while_one_is_held(looping, monkeypatch):
    watcher, engine, clock, logs, ups = looping
    engine.containers.append(ContainerInfo("w1-dovecot", "running", pid=os.getpid()))
    watcher.check()
    engine.crash(times=3)
    clock.now += 1
    watcher.check()
    engine.containers[1].state = "exited"  # dovecot killed through the engine meanwhile
    clock.now += 1
    watcher.check()
    clock.now += 1
    assert watcher.check() == ["w1-dovecot"]
    assert ups == [{"w1-rspamd"}]  # up leaves the held container stopped
