"""The Redis task queue: same output as the CLI, one task at a time, survives Redis restarts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest
import redis
from conftest import MAILCTL, TEST_INSTANCE, TEST_PREFIX

INSTANCE = TEST_PREFIX + TEST_INSTANCE  # the name the `mail` fixture gives the shared instance

pytestmark = pytest.mark.containers

REDIS_PORT = int(os.environ.get("MAIL_TEST_REDIS_PORT", "26379"))


def start_redis(tmp_path) -> subprocess.Popen:
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen([server, "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=REDIS_PORT)
    for _ in range(50):
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("redis-server did not start")


@pytest.fixture
def queue(mail, tmp_path):
    """A host redis-server and `mailctl agent` serving the test instance from it."""
    server = start_redis(tmp_path)
    agent = subprocess.Popen([MAILCTL, "agent", "--redis", f"redis://127.0.0.1:{REDIS_PORT}/0"],
                             env=mail.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    state = {"server": server}
    yield redis.Redis(port=REDIS_PORT, decode_responses=True), state, tmp_path
    agent.terminate()
    agent.wait(10)
    state["server"].terminate()
    state["server"].wait(10)


def push(client: redis.Redis, action: str, data, instance: str = INSTANCE) -> str:
    task_id = str(uuid.uuid4())
    client.lpush(f"module/{instance}/tasks", json.dumps({"id": task_id, "action": action, "data": data}))
    return task_id


def result(client: redis.Redis, task_id: str, timeout: float = 120, instance: str = INSTANCE) -> dict:
    key = f"task/module/{instance}/{task_id}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.exists(key):
                return client.hgetall(key)
        except redis.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no result for task {task_id}")


def test_same_output_over_cli_and_redis(mail, queue):
    client, _, _ = queue
    mail.run("add-domain", {"domain": "parity.example.com", "description": "p"})
    try:
        cli_output = mail.run("list-domains")
        task = push(client, "list-domains", "")
        res = result(client, task)
        assert res["exit_code"] == "0", res
        assert json.loads(res["output"]) == cli_output
        # the NS8 per-field keys hold the same result
        assert client.get(f"task/module/{mail.instance}/{task}/exit_code") == "0"
        assert json.loads(client.get(f"task/module/{mail.instance}/{task}/output")) == cli_output

        bad = result(client, push(client, "add-domain", {"domain": "nodot"}))
        assert bad["exit_code"] == "10"
        assert json.loads(bad["output"])[0]["field"] == "domain"
    finally:
        mail.run("remove-domain", {"domain": "parity.example.com"})


def test_two_tasks_pushed_at_once_run_one_after_the_other(mail, queue):
    client, _, _ = queue
    pubsub = client.pubsub()
    pubsub.psubscribe(f"progress/module/{mail.instance}/task/*")
    first = push(client, "set-queue-settings", {"maximal_queue_lifetime": 60})
    second = push(client, "set-queue-settings", {"maximal_queue_lifetime": 120})
    events = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and sum(1 for e in events if e[1] in ("completed", "aborted")) < 2:
        msg = pubsub.get_message(timeout=1)
        if msg and msg["type"] == "pmessage":
            task_id = msg["channel"].rsplit("/", 1)[1]
            events.append((task_id, json.loads(msg["data"])["status"]))
    order = [(t, s) for t, s in events if s in ("running", "completed")]
    assert order[0] == (first, "running")
    first_done = order.index((first, "completed"))
    second_start = order.index((second, "running"))
    assert first_done < second_start, order
    assert result(client, first)["exit_code"] == "0"
    assert result(client, second)["exit_code"] == "0"
    assert mail.run("get-queue-settings") == {"maximal_queue_lifetime": "120"}


def test_agent_survives_a_redis_restart(mail, queue):
    client, state, tmp_path = queue
    state["server"].terminate()
    state["server"].wait(10)
    time.sleep(2)  # the agent sees the connection drop and keeps retrying
    state["server"] = start_redis(tmp_path)
    res = result(client, push(client, "get-queue-settings", ""), timeout=60)
    assert res["exit_code"] == "0"
    assert json.loads(res["output"]) == {"maximal_queue_lifetime": "120"}
