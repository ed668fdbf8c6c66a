"""IMAP migration: sync jobs that copy a remote IMAP account into a local mailbox.

Built on Dovecot's own dsync: `doveadm sync -1 -R -u LOCALUSER imapc:` run in the dovecot
container, with the remote account given as imapc settings. dsync is one-way here (-1,
pulled from the remote with -R): folders, messages and flags (keywords too) are copied,
and a later run copies only what is new or changed (dsync matches the messages already
copied), nothing local is ever deleted. With delete_remote, the remote messages that were
there before a successful copy (up to each folder's highest UID read first) are expunged
on the remote afterwards, through imapc too. Chosen over imapsync/mbsync because it is in the
image already, writes through Dovecot (indexes, quota, ACLs stay right) and needs no
second copy of the mailbox format.

A job (the setting `imap_sync_jobs`, id -> fields) never holds the remote password: that
is the secret file imapsync/<id> (0600), never output, and reaches doveadm in its environment
(never its command line). The state of runs is not part of
the configuration: <state>/imapsync-status/<id>.json says running/done/failed, when, and
how many messages the last run added.

Scheduling: `run_due_jobs` starts every job whose interval has passed (or a one-shot job
never run), one job after the other; `mailctl watch` (the systemd unit mailctl-watch@,
the loop that keeps the containers running) calls it every 30 s from a thread of its own.
run-sync-job runs a job at once; a job is never run twice at the same time (a lock file).
"""

from __future__ import annotations

import datetime
import fcntl
import fnmatch
import json
import os
import re
import secrets as pysecrets
from pathlib import Path
from typing import Any

from .engines import Engine, get_engine
from .secrets import write_secret
from .settings import Instance
from .state import Store

JOBS = "imap_sync_jobs"
SECRET_DIR = "imapsync"
FIELDS = ("localuser", "remotehost", "remoteport", "security", "remoteuser", "folders_include",
          "folders_exclude", "interval_minutes", "delete_remote", "enabled")
IMAPC_SSL = {"tls": "imaps", "starttls": "starttls", "none": "no"}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def jobs(store: Store) -> dict[str, dict[str, Any]]:
    return store.get(JOBS) or {}


def password_path(instance: Instance, job_id: str) -> Path:
    return instance.secrets_dir / SECRET_DIR / job_id


def status_path(instance: Instance, job_id: str) -> Path:
    return instance.state_dir / "imapsync-status" / f"{job_id}.json"


def read_status(instance: Instance, job_id: str) -> dict[str, Any]:
    try:
        return json.loads(status_path(instance, job_id).read_text())
    except (OSError, ValueError):
        return {"state": "never_run"}


def _write_status(instance: Instance, job_id: str, status: dict[str, Any]) -> None:
    path = status_path(instance, job_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status))
    os.replace(tmp, path)


# ---------------------------------------------------------------- configuration (actions)


def _set_password(ctx, job_id: str, password: str) -> None:
    """Write the job's password secret; the action's undo puts the previous one back."""
    path = password_path(ctx.instance, job_id)
    previous = path.read_text() if path.exists() else None

    def undo() -> None:
        if previous is None:
            path.unlink(missing_ok=True)
        else:
            write_secret(path, previous)

    ctx.undo.append(undo)
    write_secret(path, password)


def add_job(ctx, data: dict[str, Any]) -> str:
    """Store a new job (fields of FIELDS, defaults filled) and its password; return its id."""
    _check_user(ctx, data["localuser"])
    job_id = pysecrets.token_hex(4)
    job = {"remoteport": 993, "security": "tls", "folders_include": [], "folders_exclude": [],
           "interval_minutes": 0, "delete_remote": False, "enabled": True}
    job.update({k: data[k] for k in FIELDS if k in data})
    all_jobs = jobs(ctx.store)
    all_jobs[job_id] = job
    ctx.store.set(JOBS, all_jobs)
    _set_password(ctx, job_id, data["remotepassword"])
    return job_id


def alter_job(ctx, data: dict[str, Any]) -> None:
    all_jobs = jobs(ctx.store)
    job_id = data["job_id"]
    if job_id not in all_jobs:
        ctx.reject("job_id", "job_not_found", job_id, f"no sync job {job_id}")
    if "localuser" in data:
        _check_user(ctx, data["localuser"])
    all_jobs[job_id].update({k: data[k] for k in FIELDS if k in data})
    ctx.store.set(JOBS, all_jobs)
    if data.get("remotepassword"):
        _set_password(ctx, job_id, data["remotepassword"])


def remove_job(ctx, job_id: str) -> None:
    all_jobs = jobs(ctx.store)
    if job_id not in all_jobs:
        ctx.reject("job_id", "job_not_found", job_id, f"no sync job {job_id}")
    del all_jobs[job_id]
    ctx.store.set(JOBS, all_jobs)
    path = password_path(ctx.instance, job_id)
    if path.exists():
        previous = path.read_text()
        ctx.undo.append(lambda: write_secret(path, previous))
        path.unlink()
    status_path(ctx.instance, job_id).unlink(missing_ok=True)
    for suffix in (".lock", ".dsync"):
        status_path(ctx.instance, job_id).with_suffix(suffix).unlink(missing_ok=True)


def list_jobs(instance: Instance, store: Store) -> list[dict[str, Any]]:
    """Every job with its last run's status; never a password."""
    return [{"job_id": job_id, **job, "status": read_status(instance, job_id)}
            for job_id, job in sorted(jobs(store).items())]


def _check_user(ctx, user: str) -> None:
    from .directory import open_directory
    from .mailboxes import require_user

    require_user(open_directory(ctx.instance, ctx.store), user, ctx.reject, "localuser")


# ---------------------------------------------------------------- running


# The remote password never goes on a command line (every process of the container can read
# those): it reaches the container in the environment of the exec (remote_env), and a shell
# builtin writes it into a private config file that includes the daemon's configuration and
# adds imapc_password; doveadm reads that file (-c); the file is removed on every exit path.
PASSWORD_ENV = "MAIL_IMAPC_PASSWORD"
_PASSWORD_CONFIG = (
    'umask 077; conf=$(mktemp) || exit 75; trap \'rm -f "$conf"\' EXIT; '
    'printf \'!include /etc/dovecot/dovecot.conf\\nimapc_password = "%s"\\n\' '
    f'"${PASSWORD_ENV}" > "$conf"; unset {PASSWORD_ENV}; cmd=$1; shift; "$cmd" -c "$conf" "$@"'
)


def remote_env(password: str) -> dict[str, str]:
    """The environment that hands the remote password to the commands of _doveadm(), escaped
    for a quoted value of Dovecot's configuration."""
    return {PASSWORD_ENV: password.replace("\\", "\\\\").replace('"', '\\"')}


def _doveadm(job: dict[str, Any], *command: str) -> list[str]:
    return ["sh", "-c", _PASSWORD_CONFIG, "sh", "doveadm",
            "-o", f"imapc_host={job['remotehost']}", "-o", f"imapc_port={job['remoteport']}",
            "-o", f"imapc_ssl={IMAPC_SSL[job['security']]}", "-o", "imapc_ssl_verify=no",
            "-o", f"imapc_user={job['remoteuser']}",
            "-o", "imapc_features=rfc822.size fetch-headers modseq", "-o", "imapc_list_prefix=",
            "-o", "mail_prefetch_count=20", *command]


def _message_count(engine: Engine, container: str, user: str) -> int:
    code, out = engine.exec(container, ["doveadm", "-f", "tab", "mailbox", "status", "-u", user, "messages", "*"])
    if code != 0:
        return 0
    # tab format: a header line, then "<mailbox>\t<messages>" per mailbox
    counts = [line.rsplit("\t", 1)[-1].strip() for line in out.splitlines()[1:]]
    return sum(int(c) for c in counts if c.isdigit())


def sync_command(job: dict[str, Any], folder: str = "", state: str = "") -> list[str]:
    """The doveadm sync of `job`: one-way from the remote, of one folder (-m) or all but
    the excluded ones (-x), from the sync state the previous run printed (-s: only what
    changed since on either side is compared, so flag changes on the remote are seen)."""
    args = ["sync", "-1", "-R", "-u", job["localuser"], "-s", state]
    if folder:
        args += ["-m", folder]
    for excluded in job.get("folders_exclude", []):
        args += ["-x", excluded]
    return _doveadm(job, *args, "imapc:")


STATE_MARK = "DSYNC-STATE:"


def _with_state(command: list[str]) -> list[str]:
    """Run `command` so that its stdout (the new sync state) is printed after STATE_MARK, its log before."""
    script = 'err=$(mktemp); out=$("$@" 2>"$err"); rc=$?; cat "$err"; rm -f "$err"; echo "%s$out"; exit $rc'
    return ["sh", "-c", script % STATE_MARK, "sh", *command]


def _state_of(output: str) -> str:
    for line in reversed(output.splitlines()):
        if line.startswith(STATE_MARK):
            return line[len(STATE_MARK):].strip()
    return ""


def _states_path(instance: Instance, job_id: str) -> Path:
    return status_path(instance, job_id).with_suffix(".dsync")


def _read_states(instance: Instance, job_id: str) -> dict[str, str]:
    try:
        return json.loads(_states_path(instance, job_id).read_text())
    except (OSError, ValueError):
        return {}


def _write_states(instance: Instance, job_id: str, states: dict[str, str]) -> None:
    _states_path(instance, job_id).write_text(json.dumps(states))


def run_job(instance: Instance, store: Store, job_id: str, engine: Engine | None = None) -> dict[str, Any]:
    """Run one job now; write and return its status (state done or failed, error, messages_added).

    A job already running (the scheduler and run-sync-job at once) is not started twice:
    its current status is returned.
    """
    job = jobs(store).get(job_id)
    if job is None:
        raise KeyError(job_id)
    lock_path = status_path(instance, job_id).with_suffix(".lock")
    lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return read_status(instance, job_id)
        return _run_locked(instance, job_id, job, engine)


def _run_locked(instance: Instance, job_id: str, job: dict[str, Any], engine: Engine | None) -> dict[str, Any]:
    engine = engine or get_engine(instance.engine)
    container = instance.container_name("dovecot")
    password = password_path(instance, job_id).read_text()
    started = _now()
    _write_status(instance, job_id, {**read_status(instance, job_id), "state": "running", "started": started})
    before = _message_count(engine, container, job["localuser"])
    errors = []
    remote_uids: dict[str, int] = {}
    if job.get("delete_remote"):  # what is on the remote before the copy: only that is deleted after it
        remote_uids, error = _remote_uids(engine, container, job, password)
        errors += [error] if error else []
    states = _read_states(instance, job_id) if not errors else {}
    for folder in (job.get("folders_include") or [""]) if not errors else []:
        code, out = engine.exec(container, _with_state(sync_command(job, folder, states.get(folder, ""))),
                                env=remote_env(password))
        if code != 0:
            errors.append(_reason(out))
            break
        states[folder] = _state_of(out)
    if not errors:
        _write_states(instance, job_id, states)
    if remote_uids and not errors:
        errors += _expunge_remote(engine, container, job, password, remote_uids)
    after = _message_count(engine, container, job["localuser"])
    status = {"state": "failed" if errors else "done", "started": started, "finished": _now(),
              "messages_added": max(after - before, 0), "error": errors[0] if errors else ""}
    _write_status(instance, job_id, status)
    return status


def _remote_folder_wanted(job: dict[str, Any], folder: str) -> bool:
    if job.get("folders_include"):
        return folder in job["folders_include"]
    return not any(fnmatch.fnmatchcase(folder, mask) for mask in job.get("folders_exclude", []))


def _remote_uids(engine: Engine, container: str, job: dict[str, Any], password: str) -> tuple[dict[str, int], str]:
    """The highest UID of each remote folder the job copies (read through imapc); an error or ""."""
    code, out = engine.exec(container, _doveadm(job, "-o", "mail_location=imapc:", "-f", "tab", "fetch",
                                                "-u", job["localuser"], "mailbox uid", "ALL"),
                            env=remote_env(password))
    if code != 0:
        return {}, _reason(out)
    highest: dict[str, int] = {}
    for line in out.splitlines()[1:]:
        folder, _, uid = line.rpartition("\t")
        if uid.strip().isdigit() and _remote_folder_wanted(job, folder):
            highest[folder] = max(highest.get(folder, 0), int(uid))
    return highest, ""


def _expunge_remote(engine: Engine, container: str, job: dict[str, Any], password: str,
                    remote_uids: dict[str, int]) -> list[str]:
    """Delete on the remote the messages that were there before the copy that just succeeded
    (by UID: one arriving meanwhile has a higher UID and waits for the next run)."""
    for folder, uid in sorted(remote_uids.items()):
        code, out = engine.exec(container, _doveadm(job, "-o", "mail_location=imapc:", "expunge",
                                                    "-u", job["localuser"], "mailbox", folder, "uid", f"1:{uid}"),
                                env=remote_env(password))
        if code != 0:
            return [f"delete on remote: {_reason(out)}"]
    return []


def _reason(output: str) -> str:
    """The first error line of doveadm's output, with any password left out."""
    for line in output.splitlines():
        if "Authentication failed" in line:
            return "remote authentication failed"
        if "Error:" in line:
            return re.sub(r"imapc_password=\S+", "imapc_password=***", line.split("Error:", 1)[1].strip())[:300]
    return (output.strip().splitlines() or ["doveadm sync failed"])[-1][:300]


def due(job: dict[str, Any], status: dict[str, Any], now: datetime.datetime) -> bool:
    """Whether the scheduler should start `job` now."""
    if not job.get("enabled", True) or status.get("state") == "running":
        return False
    if status.get("state") == "never_run":
        return True
    minutes = job.get("interval_minutes", 0)
    if not minutes:
        return False  # one-shot: run once (run-sync-job runs it again)
    last = datetime.datetime.fromisoformat(status.get("started", "1970-01-01T00:00:00+00:00"))
    return now - last >= datetime.timedelta(minutes=minutes)


def run_due_jobs(instance: Instance, engine: Engine | None = None) -> list[str]:
    """Run every due job of the instance (one after the other); return their ids."""
    if not instance.db_path.exists():
        return []
    store = Store(instance.db_path)
    try:
        now = datetime.datetime.now(datetime.UTC)
        ran = []
        for job_id, job in jobs(store).items():
            if due(job, read_status(instance, job_id), now):
                run_job(instance, store, job_id, engine)
                ran.append(job_id)
        return ran
    finally:
        store.close()
