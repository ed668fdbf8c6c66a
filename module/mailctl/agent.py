"""`mailctl agent`: run actions pushed on the Redis task queue, the NS8 way.

A task is JSON `{"id", "action", "data"}` pushed (LPUSH) on `module/<instance>/tasks`.
The agent pops tasks one at a time (so two actions of an instance never overlap),
runs each exactly like `mailctl run` does (same code, a child process), publishes
progress on `progress/module/<instance>/task/<id>`, and stores the result both as
the hash `task/module/<instance>/<id>` (fields output, error, exit_code) and as the
NS8 keys `task/module/<instance>/<id>/{output,error,exit_code}`. If Redis goes
away, the agent waits and reconnects; a finished task's result is kept until
it has been stored.

Only actions of the catalogue run (the name is never read as an option), each for at
most MAIL_TASK_TIMEOUT seconds; the result of an action whose output is a secret
(SECRET_OUTPUT_TTL) is kept only long enough for the caller to read it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

import redis
from tenacity import retry, retry_if_exception_type, wait_exponential

from . import schemas
from .settings import Instance

RESULT_TTL = 7 * 24 * 3600  # seconds a stored task result is kept
# Actions whose output is a secret, and the seconds their stored result is kept.
SECRET_OUTPUT_TTL = {"reveal-master-credentials": 120}
# Seconds a task may run before it is killed (an import of a large export takes long).
TASK_TIMEOUT = float(os.environ.get("MAIL_TASK_TIMEOUT", "3600"))
EXIT_TIMEOUT = 124  # exit code stored for a task killed at its timeout (as timeout(1))

_reconnect = retry(
    retry=retry_if_exception_type((redis.ConnectionError, redis.TimeoutError)),
    wait=wait_exponential(multiplier=0.2, max=5),
    reraise=True,
)


class Agent:
    def __init__(self, instance: Instance, redis_url: str, log: Callable[[str], None] = print,
                 task_timeout: float = TASK_TIMEOUT):
        self.instance = instance
        self.task_timeout = task_timeout
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5,
                                          health_check_interval=15)
        self.log = log
        self.prefix = f"module/{instance.name}"
        # Actions that read the cluster's keys (a backup destination) connect to the same Redis.
        self.redis_url = redis_url

    @property
    def queue(self) -> str:
        return f"{self.prefix}/tasks"

    def serve(self, max_tasks: int | None = None) -> None:
        """Pop and run tasks forever (or `max_tasks` of them)."""
        self.log(f"agent for {self.instance.name}: waiting for tasks on {self.queue}")
        done = 0
        while max_tasks is None or done < max_tasks:
            raw = self._pop()
            if raw is None:
                continue
            self._handle(raw)
            done += 1

    @_reconnect
    def _pop(self) -> bytes | None:
        item = self.redis.brpop([self.queue], timeout=5)
        return item[1] if item else None

    def _handle(self, raw: bytes) -> None:
        try:
            task = json.loads(raw)
            task_id, action = str(task["id"]), str(task["action"])
        except (ValueError, KeyError, TypeError):
            self.log(f"agent: dropped a malformed task ({len(raw)} bytes)")  # its data may hold passwords
            return
        if action not in schemas.action_names():
            self.log(f"agent: task {task_id}: unknown action refused")
            self._store(task_id, 1, "", f"unknown action {action[:100]!r}: not in the catalogue", action)
            self._publish(task_id, {"progress": 100, "status": "aborted", "exit_code": 1})
            return
        self.log(f"agent: task {task_id}: {action}")
        self._publish(task_id, {"progress": 0, "status": "running", "action": action})
        code, out, err = self._execute(task_id, action, task.get("data"))
        self._store(task_id, code, out, err, action)
        status = ns8_status(code)
        self._publish(task_id, {"progress": 100, "status": status, "exit_code": code})
        self.log(f"agent: task {task_id}: exit {code}")

    def _execute(self, task_id: str, action: str, data) -> tuple[int, str, str]:
        def relay(message: dict) -> None:
            try:
                self._publish(task_id, {**message, "status": "running"})
            except redis.RedisError:
                pass  # progress is informative; never let it break a task

        return run_child(self.instance, action, data, relay, timeout=self.task_timeout, redis_url=self.redis_url)

    @_reconnect
    def _publish(self, task_id: str, message: dict) -> None:
        self.redis.publish(f"progress/{self.prefix}/task/{task_id}", json.dumps(message))

    @_reconnect
    def _store(self, task_id: str, code: int, output: str, error: str, action: str = "") -> None:
        key = f"task/{self.prefix}/{task_id}"
        result = result_record(code, output, error)
        ttl = SECRET_OUTPUT_TTL.get(action, RESULT_TTL)
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping=result)
            pipe.expire(key, ttl)
            for name, value in result.items():
                pipe.set(f"{key}/{name}", value, ex=ttl)
            pipe.execute()


def ns8_status(exit_code: int) -> str:
    """The NS8 status word of a finished task."""
    return "completed" if exit_code == 0 else ("validation-failed" if exit_code == 10 else "aborted")


def result_record(exit_code: int, output: str, error: str) -> dict[str, str]:
    """A finished task's result as stored in Redis: stdout, stderr and exit code, as strings."""
    return {"output": output.strip(), "error": error.strip(), "exit_code": str(exit_code)}


def run_child(instance: Instance, action: str, data, on_progress: Callable[[dict], None],
              timeout: float = TASK_TIMEOUT, redis_url: str | None = None) -> tuple[int, str, str]:
    """Run one action in a child `mailctl run` (the CLI's very code path, lock included).

    Returns (exit code, stdout, stderr); each progress line the child writes
    (`{"progress": N}`) is handed to `on_progress` as it comes. A child still running
    after `timeout` seconds is killed with what it started (EXIT_TIMEOUT).
    """
    read_fd, write_fd = os.pipe()
    env = {**os.environ, "MAIL_INSTANCE": instance.name, "MAIL_STATE_DIR": str(instance.state_root),
           "MAIL_BIND": instance.bind, "MAIL_PORT_OFFSET": str(instance.port_offset),
           "MAIL_ENGINE": instance.engine, "MAIL_PROGRESS_FD": str(write_fd)}
    if redis_url:
        env["MAIL_AGENT_REDIS"] = redis_url  # snapshotcontent.AGENT_REDIS_ENV
    # "--": the action is an argument even if it looks like an option (callers check the catalogue too).
    child = subprocess.Popen(
        [sys.executable, "-m", "mailctl", "run", "--data", "-", "--", action],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, pass_fds=(write_fd,), start_new_session=True,
    )
    os.close(write_fd)
    relay = threading.Thread(target=_relay_progress, args=(read_fd, on_progress), daemon=True)
    relay.start()
    try:
        out, err = child.communicate(json.dumps(data if data is not None else ""), timeout=timeout)
        code = child.returncode
    except subprocess.TimeoutExpired:
        # The whole session: the action and what it started (podman, tar...). The next
        # action repairs what it left (runner: Applier.recover).
        os.killpg(child.pid, signal.SIGKILL)
        out, _ = child.communicate()
        code, err = EXIT_TIMEOUT, f"action {action} killed after {timeout:.0f}s (task timeout)"
    relay.join(timeout=5)
    return code, out, err


def _relay_progress(fd: int, on_progress: Callable[[dict], None]) -> None:
    with os.fdopen(fd) as lines:
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                on_progress(message)
