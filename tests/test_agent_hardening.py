"""The Redis task queue refuses what is not an action, keeps secret outputs briefly, kills
tasks at their timeout, and never stores a refused password. Runs on a host redis-server
with an instance that has no containers (these actions need none)."""

from __future__ import annotations

import json
import threading

import pytest
import redis
from test_agent import REDIS_PORT, push, result, start_redis

from mailctl import agent as agent_module
from mailctl.agent import Agent
from mailctl.runner import instance_lock
from mailctl.settings import Instance


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(redis client, instance, start(n_tasks, timeout)) with a host redis-server."""
    server = start_redis(tmp_path)
    instance = Instance(name="hdagent", state_root=tmp_path / "state")
    monkeypatch.setenv("MAIL_STATE_DIR", str(instance.state_root))
    threads = []

    def start(tasks: int, task_timeout: float = 60) -> None:
        agent = Agent(instance, f"redis://127.0.0.1:{REDIS_PORT}/0", log=lambda _: None, task_timeout=task_timeout)
        thread = threading.Thread(target=agent.serve, args=(tasks,), daemon=True)
        thread.start()
        threads.append(thread)

    yield redis.Redis(port=REDIS_PORT, decode_responses=True), instance, start
    for thread in threads:
        thread.join(30)
    server.terminate()
    server.wait(10)


def test_an_option_is_not_run_as_an_action(served):
    client, instance, start = served
    start(2)
    tasks = [push(client, name, "", instance.name) for name in ("--help", "no-such-action")]
    for task in tasks:
        res = result(client, task, instance=instance.name)
        assert res["exit_code"] == "1"
        assert "not in the catalogue" in res["error"]
        assert res["output"] == ""  # no usage text: nothing was run
    assert not instance.state_dir.exists()


def test_secret_output_is_kept_briefly_and_refused_passwords_not_at_all(served):
    client, instance, start = served
    start(3)
    reveal = push(client, "reveal-master-credentials", "", instance.name)
    refused = push(client, "add-user", {"user": "john", "password": "short1"}, instance.name)
    listed = push(client, "list-relay-rules", "", instance.name)
    res = result(client, reveal, instance=instance.name)
    assert res["exit_code"] == "0" and json.loads(res["output"])["password"]
    key = f"task/module/{instance.name}/{reveal}"
    for k in (key, f"{key}/output"):
        assert 0 < client.ttl(k) <= agent_module.SECRET_OUTPUT_TTL["reveal-master-credentials"]
    res = result(client, refused, instance=instance.name)
    assert res["exit_code"] == "10" and "short1" not in json.dumps(res)
    result(client, listed, instance=instance.name)
    assert client.ttl(f"task/module/{instance.name}/{listed}") > 24 * 3600


def test_a_task_is_killed_at_its_timeout(served):
    client, instance, start = served
    start(1, task_timeout=2)
    with instance_lock(instance):  # the action waits for this lock longer than the task may run
        task = push(client, "list-relay-rules", "", instance.name)
        res = result(client, task, timeout=30, instance=instance.name)
    assert res["exit_code"] == str(agent_module.EXIT_TIMEOUT)
    assert "timeout" in res["error"]
