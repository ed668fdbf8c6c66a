"""Instance locks: a fixed order (no deadlock between opposite clones) and a timeout."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest

from mailctl import runner
from mailctl.settings import Instance


def test_opposite_lock_requests_do_not_deadlock(tmp_path, monkeypatch):
    a, b = Instance(name="lock-a", state_root=tmp_path), Instance(name="lock-b", state_root=tmp_path)
    real = runner.instance_lock

    @contextmanager
    def slow_lock(instance, timeout=None):
        with real(instance, timeout):
            time.sleep(0.3)  # both requests hold their first lock before asking for the second
            yield

    monkeypatch.setattr(runner, "instance_lock", slow_lock)
    outcome: dict[str, object] = {}

    def clone(name, order):
        try:
            with runner.instance_locks(order, timeout=3):
                outcome[name] = "done"
        except runner.InstanceBusy as exc:
            outcome[name] = exc

    threads = [threading.Thread(target=clone, args=("a<-b", [a, b])),
               threading.Thread(target=clone, args=("b<-a", [b, a]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert outcome == {"a<-b": "done", "b<-a": "done"}


def test_a_held_lock_times_out(tmp_path):
    instance = Instance(name="lock-c", state_root=tmp_path)
    held, release = threading.Event(), threading.Event()

    def holder():
        with runner.instance_lock(instance):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    started = time.monotonic()
    with pytest.raises(runner.InstanceBusy):
        with runner.instance_lock(instance, timeout=0.5):
            pass
    assert time.monotonic() - started < 3
    release.set()
    thread.join(5)
    with runner.instance_lock(instance, timeout=0.5):  # free again
        pass
