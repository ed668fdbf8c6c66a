"""Long actions (import, restore, clone, flush...) as tasks with progress.

Each task runs in a child `mailctl run`, through the same code as the Redis agent
(`agent.run_child`), so it holds the instance lock like any other action. Its record
is the agent's result record (output, error, exit code) plus the running state; on
exit 10 the output is the error list.
Records live in the server's memory; the newest `keep` are kept, but the output of an
action whose output is a secret (agent.SECRET_OUTPUT_TTL) only for that many seconds.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

from ..agent import SECRET_OUTPUT_TTL, result_record, run_child
from ..settings import Instance


def _parse(text: str) -> Any:
    """stdout of `mailctl run` is JSON (output or error list); keep anything else as text."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


class Tasks:
    def __init__(self, instance: Instance, keep: int = 200):
        self.instance = instance
        self.keep = keep
        self._records: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, action: str, data: Any) -> str:
        """Run `action` in the background; return the new task's id."""
        task_id = str(uuid.uuid4())
        record = {"id": task_id, "action": action, "status": "running", "progress": 0,
                  "output": None, "error": "", "exit_code": None}
        with self._lock:
            self._records[task_id] = record
            while len(self._records) > self.keep:
                oldest = next(iter(self._records))
                if self._records[oldest]["status"] == "running":
                    break  # never forget a task still running
                self._records.popitem(last=False)
        threading.Thread(target=self._run, args=(task_id, action, data), daemon=True,
                         name=f"task-{action}").start()
        return task_id

    def get(self, task_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._records.get(task_id)
            if record is None:
                return None
            ttl = SECRET_OUTPUT_TTL.get(record["action"])
            finished = record.get("finished")
            if ttl is not None and finished is not None and time.monotonic() - finished > ttl:
                record["output"] = None  # the secret is gone from memory too
            return {k: v for k, v in record.items() if k != "finished"}

    def _update(self, task_id: str, **fields: Any) -> None:
        with self._lock:
            self._records[task_id].update(fields)

    def _run(self, task_id: str, action: str, data: Any) -> None:
        def on_progress(message: dict) -> None:
            progress = message.get("progress")
            if isinstance(progress, int) and 0 <= progress <= 100:
                self._update(task_id, progress=progress)

        try:
            code, out, err = run_child(self.instance, action, data, on_progress)
        except OSError as exc:  # could not even start the child
            code, out, err = 1, "", f"cannot start the action: {exc}"
        result = result_record(code, out, err)
        self._update(task_id, status="done" if code == 0 else "failed", progress=100, finished=time.monotonic(),
                     output=_parse(result["output"]),
                     error=result["error"].removeprefix("mailctl: "), exit_code=code)
