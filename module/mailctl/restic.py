"""Incremental, encrypted backups of an instance in a restic repository.

A backup is the same unpacked export that `mailctl export` archives (backup.transfer.export_to_directory:
manifest, state database copied with SQLite's backup API, secrets, TLS, one uncompressed
tar per data volume, Dovecot and Postfix paused while their volume is copied), written to a
fixed scratch directory and handed to `restic backup`. Uncompressed tars at a fixed path
let restic find the previous snapshot and store only the chunks that changed: a second
backup after a few new messages adds kilobytes, not the whole mail store.

The repository is anything restic opens (a local path, sftp:host:/path, s3:https://...),
its credentials (AWS_ACCESS_KEY_ID, ...) come from the environment as restic reads them.
The repository password is the instance secret `restic-password` (0600), created at the
first backup and shown once; RESTIC_PASSWORD or RESTIC_PASSWORD_FILE in the environment
take precedence (a restore into a new instance needs one of them).

A restore reads the snapshot into a scratch directory, checks it like an import, and
replaces the instance by it (backup.transfer.import_unpacked). A repository that cannot be opened
(wrong password, missing) fails before anything is touched.
"""

from __future__ import annotations

import json
import os
import secrets as pysecrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backup import archive, transfer
from .engines import Engine, get_engine
from .errors import MailError
from .secrets import write_secret
from .settings import Instance
from .state import Store

PASSWORD_SECRET = "restic-password"
TAG = "mail-instance"
RESTIC = "restic"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class ResticError(MailError):
    """restic refused: `field` and `error` name the cause in NS8's error-list terms."""

    def __init__(self, field: str, error: str, message: str):
        super().__init__(message)
        self.field = field
        self.error = error


@dataclass
class BackupResult:
    """What a backup did: the snapshot, restic's figures, and a password made just now (or None)."""

    snapshot_id: str
    files_new: int
    files_changed: int
    data_added: int
    total_bytes: int
    new_password: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot_id, "files_new": self.files_new, "files_changed": self.files_changed,
                "data_added": self.data_added, "total_bytes": self.total_bytes}


# ---------------------------------------------------------------- running restic


def _password_from_env() -> bool:
    return bool(os.environ.get("RESTIC_PASSWORD") or os.environ.get("RESTIC_PASSWORD_FILE"))


def password_file(instance: Instance) -> Path:
    return instance.secrets_dir / PASSWORD_SECRET


def ensure_password(instance: Instance) -> str | None:
    """Create the repository password secret if there is none; return it when just made."""
    if _password_from_env() or password_file(instance).exists():
        return None
    password = pysecrets.token_urlsafe(32)
    write_secret(password_file(instance), password)
    return password


def _env(instance: Instance, repository: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """restic's environment; `extra` (a cluster destination's RESTIC_PASSWORD and REST
    credentials) takes precedence over the instance's password."""
    env = dict(os.environ)
    env["RESTIC_REPOSITORY"] = repository
    env.setdefault("RESTIC_CACHE_DIR", str(instance.state_root / ".cache" / "restic"))
    if extra:
        env.pop("RESTIC_PASSWORD_FILE", None)
        env.update(extra)
    elif not _password_from_env():
        if not password_file(instance).exists():
            raise ResticError("password", "password_missing",
                              f"instance {instance.name} has no restic password: set RESTIC_PASSWORD "
                              "or RESTIC_PASSWORD_FILE to the repository's password")
        env["RESTIC_PASSWORD_FILE"] = str(password_file(instance))
    env.pop("RESTIC_PASSWORD_COMMAND", None)
    return env


def _run(instance: Instance, repository: str, args: list[str], cwd: Path | None = None,
         extra_env: dict[str, str] | None = None) -> str:
    """Run restic; return its stdout, or raise ResticError with a readable cause."""
    _require_restic()
    read_only = ["--no-lock"] if args[0] in ("snapshots", "stats") else []
    proc = subprocess.run([RESTIC, *read_only, *args],
                          cwd=cwd, env=_env(instance, repository, extra_env), capture_output=True, text=True)
    if proc.returncode != 0:
        raise _error(repository, proc.stderr)
    return proc.stdout


def _require_restic() -> None:
    if shutil.which(RESTIC) is None:
        raise MailError("restic is not installed (apt-get install restic)")


def dump(instance: Instance, repository: str, snapshot_id: str, path: str,
         extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `restic dump` of one file of a snapshot: its content comes on the process's stdout
    (binary). The caller reads it, waits, and checks the exit code with `check_dump`."""
    _require_restic()
    return subprocess.Popen([RESTIC, "--no-lock", "dump", snapshot_id, path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env(instance, repository, extra_env))


def check_dump(proc: subprocess.Popen, repository: str) -> None:
    """Raise ResticError if a finished `dump` failed."""
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.wait() != 0:
        raise _error(repository, stderr)


def find_snapshot(instance: Instance, repository: str, snapshot: str,
                  extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """restic's record (id, paths, hostname...) of a mail snapshot: `latest` is the latest of
    this instance (else the latest), otherwise an id or an id's prefix."""
    raw = json.loads(_run(instance, repository, ["snapshots", "--json", "--tag", TAG], extra_env=extra_env)
                     or "[]") or []
    if snapshot == "latest":
        own = [s for s in raw if s.get("hostname") == instance.name]
        found = (own or raw)[-1:]
    else:
        found = [s for s in raw if s["id"].startswith(snapshot)]
    if not found:
        raise ResticError("snapshot", "snapshot_not_found", f"no mail snapshot {snapshot!r} in {repository}")
    return found[-1]


def _error(repository: str, stderr: str) -> ResticError:
    text = stderr.strip()
    if "wrong password" in text or "no key found" in text:
        return ResticError("password", "wrong_password",
                           f"the password does not open the restic repository {repository}")
    if "Is there a repository" in text or "unable to open config file" in text or "does not exist" in text:
        return ResticError("repository", "repository_not_found", f"no restic repository at {repository}")
    if "no matching ID found" in text or "no snapshot" in text.lower():
        return ResticError("snapshot", "snapshot_not_found", text.splitlines()[-1] if text else "no such snapshot")
    return ResticError("repository", "restic_failed", f"restic failed: {text[-400:]}")


def _ensure_repository(instance: Instance, repository: str) -> None:
    """Open the repository, or create it when there is none there yet."""
    try:
        _run(instance, repository, ["cat", "config"])
    except ResticError as exc:
        if exc.error != "repository_not_found":
            raise
        _run(instance, repository, ["init"])


# ---------------------------------------------------------------- backup


def backup_instance(instance: Instance, repository: str, engine: Engine | None = None,
                    progress: Progress = _quiet) -> BackupResult:
    """Back the instance up into `repository` (made if missing). The caller holds the action lock."""
    engine = engine or get_engine(instance.engine)
    new_password = ensure_password(instance)
    try:
        _ensure_repository(instance, repository)
    except ResticError:
        if new_password:  # a password nobody has seen opens nothing: forget it
            password_file(instance).unlink(missing_ok=True)
        raise
    # A fixed path: restic then takes the previous snapshot of the same path as parent.
    work = transfer.work_root(instance) / "restic-backup"
    transfer.work_root(instance).mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    try:
        manifest = transfer.export_to_directory(instance, work, engine, progress, pause=True)
        progress(f"restic backup to {repository}")
        out = _run(instance, repository, [
            "backup", "--json", "--host", instance.name, "--tag", TAG,
            "--tag", f"schema-{manifest['schema_version']}", str(work),
        ])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = _summary(out)
    return BackupResult(summary.get("snapshot_id", "")[:8], summary.get("files_new", 0),
                        summary.get("files_changed", 0), summary.get("data_added", 0),
                        summary.get("total_bytes_processed", 0), new_password)


def _summary(out: str) -> dict[str, Any]:
    for line in reversed(out.splitlines()):
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("message_type") == "summary":
            return message
    raise ResticError("repository", "restic_failed", "restic backup printed no summary")


def forget(instance: Instance, repository: str, keep_daily: int | None, keep_weekly: int | None) -> str:
    """Apply the retention policy to this instance's snapshots and prune unused data."""
    args = ["forget", "--prune", "--host", instance.name, "--tag", TAG]
    if keep_daily is not None:
        args += ["--keep-daily", str(keep_daily)]
    if keep_weekly is not None:
        args += ["--keep-weekly", str(keep_weekly)]
    return _run(instance, repository, args)


# ---------------------------------------------------------------- listing


def list_snapshots(instance: Instance, repository: str, sizes: bool = True) -> list[dict[str, Any]]:
    """The repository's instance snapshots, oldest first: id, time, instance, size (bytes restored)."""
    raw = json.loads(_run(instance, repository, ["snapshots", "--json", "--tag", TAG]) or "[]")
    result = []
    for snap in raw or []:
        entry = {"id": snap["short_id"], "time": snap["time"][:19] + "Z", "instance": snap.get("hostname", ""),
                 "tags": [t for t in snap.get("tags", []) if t != TAG]}
        if sizes:
            stats = json.loads(_run(instance, repository, ["stats", "--json", snap["id"]]))
            entry["size"] = stats.get("total_size", 0)
            entry["files"] = stats.get("total_file_count", 0)
        result.append(entry)
    return result


def _pick_snapshot(instance: Instance, repository: str, snapshot: str | None) -> dict[str, Any]:
    snaps = list_snapshots(instance, repository, sizes=False)
    if snapshot:
        found = [s for s in snaps if s["id"].startswith(snapshot) or snapshot.startswith(s["id"])]
        if not found:
            raise ResticError("snapshot", "snapshot_not_found", f"no snapshot {snapshot!r} in {repository}")
        return found[-1]
    if not snaps:
        raise ResticError("repository", "backup_not_found", f"{repository} holds no backup of a mail instance")
    own = [s for s in snaps if s["instance"] == instance.name]
    return (own or snaps)[-1]


# ---------------------------------------------------------------- restore


def restore_instance(instance: Instance, store: Store, repository: str, snapshot: str | None = None,
                     replace: bool = False, engine: Engine | None = None,
                     progress: Progress = _quiet) -> dict[str, Any]:
    """Replace the instance by a snapshot (the latest of this instance, else the latest)."""
    chosen = _pick_snapshot(instance, repository, snapshot)  # fails first on a bad password
    if not replace and transfer.has_data(store):
        raise ResticError("replace", "instance_not_empty",
                          f"instance {instance.name} is already configured: set replace to overwrite it")
    root = transfer.work_root(instance)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    transfer.clean_stale_workdirs(instance)
    work = Path(tempfile.mkdtemp(prefix="restic-restore-", dir=root))
    try:
        progress(f"restic restore {chosen['id']}")
        _run(instance, repository, ["restore", chosen["id"], "--target", str(work)])
        manifests = sorted(work.rglob(archive.MANIFEST), key=lambda p: len(p.parts))
        if not manifests:
            raise ResticError("snapshot", "invalid_backup", f"snapshot {chosen['id']} holds no mail export")
        unpacked = manifests[0].parent
        manifest = archive.check_unpacked(unpacked, Path(f"{repository}#{chosen['id']}"))
        transfer.import_unpacked(instance, unpacked, manifest, engine, progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"snapshot": chosen["id"], "instance": manifest.get("instance"), "created": manifest.get("created")}
