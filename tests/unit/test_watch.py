"""mailctl watch: which containers it considers down, and that it waits one look first."""

from __future__ import annotations

import os

from mailctl.engines import ContainerInfo
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
