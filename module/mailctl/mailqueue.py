"""The postfix mail queue: list, resend and delete messages, and trace a message in the logs.

Everything runs through the container engine: `postqueue -j` (one JSON object per
message), `postcat -hq` (headers, for the Message-ID), `postqueue -i/-f` (resend),
`postsuper -d` (delete), and the daemons' logs (`engine.logs`, with the engine's
timestamps so lines of different daemons can be put in one order).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from .engines import Engine
from .errors import MailError
from .settings import Instance

QUEUE_ID = re.compile(r"^[0-9A-Za-z]{5,32}$")
# Daemons whose logs trace-message reads, in the order lines with the same time are shown.
TRACED = ("postfix", "rspamd", "dovecot")


class Queue:
    """The mail queue of one instance's postfix container."""

    def __init__(self, engine: Engine, instance: Instance):
        self.engine = engine
        self.container = instance.container_name("postfix")

    def _run(self, *command: str) -> str:
        code, output = self.engine.exec(self.container, list(command))
        if code != 0:
            raise MailError(f"{command[0]} failed in {self.container} (exit {code}): {output.strip()[:300]}")
        return output

    def messages(self) -> list[dict[str, Any]]:
        """Every queued message, as `postqueue -j` reports it, plus its Message-ID."""
        entries = []
        for line in self._run("postqueue", "-j").splitlines():
            if line.startswith("{"):
                entries.append(json.loads(line))
        ids = message_ids(self._headers([e["queue_id"] for e in entries]))
        result = []
        for e in entries:
            item = {
                "queue_name": e["queue_name"], "queue_id": e["queue_id"],
                "arrival_time": int(e.get("arrival_time", 0)), "message_size": int(e.get("message_size", 0)),
                "sender": e.get("sender", ""),
                "recipients": [{"address": r["address"], **({"delay_reason": r["delay_reason"]}
                                                          if r.get("delay_reason") else {})}
                               for r in e.get("recipients", [])],
            }
            if e["queue_id"] in ids:
                item["message_id"] = ids[e["queue_id"]]
            result.append(item)
        return result

    def _headers(self, queue_ids: list[str]) -> str:
        """The header section of each message, after a `==> ID` line (one exec for all)."""
        safe = [q for q in queue_ids if QUEUE_ID.match(q)]
        if not safe:
            return ""
        script = 'for id in "$@"; do echo "==> $id"; postcat -hq "$id" 2>/dev/null; done'
        return self._run("sh", "-c", script, "sh", *safe)

    def ids(self) -> set[str]:
        return {m["queue_id"] for m in self.messages()}

    def resend(self, queue_id: str | None = None) -> None:
        """Try to deliver one message (or all of them, None) now."""
        self._run(*(["postqueue", "-i", queue_id] if queue_id else ["postqueue", "-f"]))

    def delete(self, queue_id: str | None = None) -> None:
        """Delete one message (or all of them, None) from every queue."""
        self._run("postsuper", "-d", queue_id or "ALL")


def message_ids(headers: str) -> dict[str, str]:
    """Queue id -> Message-ID header (unfolded) from the output of Queue._headers."""
    result: dict[str, str] = {}
    current = None
    collecting = False
    for line in headers.splitlines():
        if line.startswith("==> "):
            current, collecting = line[4:].strip(), False
            continue
        if current is None:
            continue
        if collecting and line[:1] in (" ", "\t"):
            result[current] = (result[current] + " " + line.strip()).strip()
            continue
        collecting = False
        if line.lower().startswith("message-id:") and current not in result:
            result[current] = line.split(":", 1)[1].strip()
            collecting = True
    return result


# trace-message: the log lines of one message in every daemon.
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)\s(.*)$")
_POSTFIX_QID = re.compile(r"postfix/[\w/.-]+\[\d+\]: ([0-9A-Za-z]{5,32}): ")
_NOTIFICATION = re.compile(r": (?:sender|postmaster) (?:non-delivery|delivery status|delay) notification: "
                           r"([0-9A-Za-z]{5,32})")
_RSPAMD_TAG = re.compile(r"^\S+ \S+ #\d+\([\w_-]+\) <(\w+)>;")
_DOVECOT_SESSION = re.compile(r"lmtp\([^)]*\)<\d+><([^>]+)>:")


def parse_stamped(text: str) -> list[tuple[datetime, str]]:
    """(time, line) of each `engine logs --timestamps` line; unstamped lines keep the last time."""
    lines: list[tuple[datetime, str]] = []
    last = datetime.min.replace(tzinfo=UTC)
    for raw in text.splitlines():
        m = _STAMP.match(raw)
        if m:
            fraction = (m.group(2) or "0")[:6].ljust(6, "0")
            zone = "+00:00" if m.group(3) == "Z" else m.group(3)
            last = datetime.fromisoformat(f"{m.group(1)}.{fraction}{zone}").astimezone(UTC)
            raw = m.group(4)
        if raw.strip():
            lines.append((last, raw))
    return lines


def trace(logs: dict[str, list[tuple[datetime, str]]], message_id: str) -> dict[str, Any]:
    """Every daemon's lines about the message `message_id` (without angle brackets), in order.

    postfix: the queue ids that logged this message id (and the queue ids of the
    notifications they sent), then every line of those queue ids; rspamd: lines with
    the message id or a queue id, and the other lines of those scan tasks; dovecot:
    LMTP lines with the message id and the other lines of those LMTP sessions.
    """
    needle = f"<{message_id}>"
    postfix = logs.get("postfix", [])
    queue_ids: list[str] = []
    for _, line in postfix:
        m = _POSTFIX_QID.search(line)
        if m and f"message-id={needle}" in line and m.group(1) not in queue_ids:
            queue_ids.append(m.group(1))
    for qid in queue_ids:  # grows while iterating: notifications about notifications
        for _, line in postfix:
            n = _NOTIFICATION.search(line)
            if n and f" {qid}: " in line and n.group(1) not in queue_ids:
                queue_ids.append(n.group(1))
    qid_marks = tuple(f" {q}: " for q in queue_ids)
    picked: list[tuple[datetime, int, str, str]] = []
    for t, line in postfix:
        if any(mark in line for mark in qid_marks):
            picked.append((t, 0, "postfix", line))
    qid_tokens = tuple(f"<{q}>" for q in queue_ids)
    rspamd = logs.get("rspamd", [])
    tags = {m.group(1) for _, line in rspamd
            if (needle in line or any(tok in line for tok in qid_tokens)) and (m := _RSPAMD_TAG.match(line))}
    for t, line in rspamd:
        m = _RSPAMD_TAG.match(line)
        if needle in line or (m and m.group(1) in tags):
            picked.append((t, 1, "rspamd", line))
    dovecot = logs.get("dovecot", [])
    sessions = {m.group(1) for _, line in dovecot
                if f"msgid={needle}" in line and (m := _DOVECOT_SESSION.search(line))}
    for t, line in dovecot:
        m = _DOVECOT_SESSION.search(line)
        if f"msgid={needle}" in line or (m and m.group(1) in sessions):
            picked.append((t, 2, "dovecot", line))
    picked.sort(key=lambda p: (p[0], p[1]))
    return {
        "message_id": message_id,
        "queue_ids": queue_ids,
        "lines": [{"time": t.isoformat(timespec="microseconds").replace("+00:00", "Z"), "daemon": d, "text": text}
                  for t, _, d, text in picked],
    }


def read_logs(engine: Engine, instance: Instance) -> dict[str, list[tuple[datetime, str]]]:
    """The time-stamped logs of the traced daemons (a daemon that is not running has none)."""
    logs = {}
    for daemon in TRACED:
        try:
            text = engine.logs(instance.container_name(daemon), timestamps=True)
        except Exception:  # noqa: BLE001 - a missing container just has no lines
            text = ""
        logs[daemon] = parse_stamped(text)
    return logs
