"""One user's IMAP folders in a restic backup: list them, restore one (NS8's
seek-snapshot-contents and restore-backup-content).

A backup made by `mailctl backup` holds the vmail volume as an uncompressed tar at
<backup dir>/volumes/vmail.tar (the snapshot's path + that). `restic dump` streams it;
only its member names are read to list folders, and only the members of the folder
asked for (and its subfolders) are kept to restore one: the volume is never unpacked.

On disk a user's mail is Maildir++ under <user>/Maildir (INBOX at its root, folder
"A/B" in the directory ".A.B", names in IMAP's modified UTF-7); the public mailboxes,
owned by the built-in user `vmail`, are a LAYOUT=fs maildir under .public ("A/B" in
"A/B"). The restore copies the kept members into a scratch directory of the dovecot
container laid out as a small maildir of the same kind, then `doveadm import` copies the
messages (flags and keywords included) under "Restored folder" (for vmail under
"<folder>/Restored folder"): Dovecot writes the indexes and counts the quota itself.

The repository is either `repository` (this product's extension: anything `mailctl
backup --repository` takes, password as restic.py reads it) or, as NS8 gives it, a
cluster backup `destination` (UUID) and `repopath`: the agent's Redis holds the
destination (`cluster/backup_repository/<uuid>`) and its restic password
(`private/agents/backup_destination/restic_password`, field <uuid>), and the repository
is reached through the node's rclone gateway, as NS8's agent does.
"""

from __future__ import annotations

import base64
import os
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import restic
from .errors import MailError
from .mailboxes import forget_quota_usage
from .settings import Instance

PUBLIC_OWNER = "vmail"
PUBLIC_ROOT = ".public"
RESTORED_FOLDER = "Restored folder"
VMAIL_TAR = "volumes/vmail.tar"
VMAIL_IN_CONTAINER = "/var/lib/vmail"
SCRATCH_PREFIX = ".restore-backup-content-"
# NS8's cluster: the rclone gateway every node runs (MAIL_BACKUP_GATEWAY names another:
# any restic repository prefix), and the Redis keys of a destination.
GATEWAY = "rest:http://127.0.0.1:4694"
GATEWAY_ENV = "MAIL_BACKUP_GATEWAY"
DESTINATION_KEY = "cluster/backup_repository/{}"
PASSWORD_KEY = "private/agents/backup_destination/restic_password"
# The Redis URL the agent gives the actions it runs (agent.run_child).
AGENT_REDIS_ENV = "MAIL_AGENT_REDIS"
# Files Dovecot makes again for the new mailboxes: not worth restoring.
_DERIVED = ("dovecot.index", "dovecot.list.index", "dovecot.mailbox.log", "dovecot-uidvalidity")


class ContentError(MailError):
    """Bad input found while reading the snapshot: `field` and `error` in NS8 error-list terms."""

    def __init__(self, field: str, error: str, message: str):
        super().__init__(message)
        self.field = field
        self.error = error


# ---------------------------------------------------------------- folder names (pure)


def decode_mutf7(name: str) -> str:
    """IMAP's modified UTF-7 (RFC 3501 5.1.3), as Dovecot names folders on disk, to text."""
    out, i = [], 0
    while i < len(name):
        if name[i] == "&":
            end = name.index("-", i)
            chunk = name[i + 1:end]
            if chunk:
                raw = chunk.replace(",", "/")
                out.append(base64.b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-16-be"))
            else:
                out.append("&")
            i = end + 1
        else:
            out.append(name[i])
            i += 1
    return "".join(out)


def encode_mutf7(text: str) -> str:
    """Text to IMAP's modified UTF-7 (the inverse of decode_mutf7)."""
    out, pending = [], ""

    def flush() -> None:
        if pending:
            encoded = base64.b64encode(pending.encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append(f"&{encoded}-")

    for ch in text:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            pending = ""
            out.append("&-" if ch == "&" else ch)
        else:
            pending += ch
    flush()
    return "".join(out)


def _member(name: str) -> str:
    """A tar member name without the leading "./" (volume tars are made with -C volume .)."""
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def folders_of(user: str, names: Iterator[str] | list[str]) -> list[str]:
    """The IMAP folders of `user` among a vmail tar's member names, sorted (NS8's list):
    every mail directory (one with a `cur`) of the user's maildir."""
    found: set[str] = set()
    for name in map(_member, names):
        if not name.endswith("/cur") and name != "cur":
            continue
        folder = _folder_of_dir(user, name[: -len("/cur")])
        if folder:
            found.add(folder)
    return sorted(found)


def _folder_of_dir(user: str, path: str) -> str | None:
    """The IMAP folder whose mail directory is `path` in the volume, if it is one of `user`."""
    if user == PUBLIC_OWNER:
        prefix = PUBLIC_ROOT + "/"
        if not path.startswith(prefix):
            return None
        return "/".join(decode_mutf7(part) for part in path[len(prefix):].split("/"))
    root = f"{user}/Maildir"
    if path == root:
        return "INBOX"
    if not path.startswith(root + "/.") or "/" in path[len(root) + 1:]:
        return None
    return "/".join(decode_mutf7(part) for part in path[len(root) + 2:].split("."))


@dataclass
class FolderSelection:
    """Which members of the vmail tar make up `folder` (with its subfolders) of `user`, and
    where each goes in the scratch maildir that `doveadm import` then reads."""

    user: str
    folder: str
    base: str = field(init=False)  # the folder's last name: "Restored folder/<base>"

    def __post_init__(self):
        self.folder = self.folder.strip("/")
        self.base = self.folder.rsplit("/", 1)[-1]

    @property
    def layout(self) -> str:
        """The scratch maildir's layout option for doveadm (public mailboxes: LAYOUT=fs)."""
        return ":LAYOUT=fs" if self.user == PUBLIC_OWNER else ""

    def target(self, member: str) -> str | None:
        """The member's path in the scratch maildir, or None when it is not part of the folder."""
        name = _member(member)
        if self.user == PUBLIC_OWNER:
            source = PUBLIC_ROOT + "/" + "/".join(encode_mutf7(p) for p in self.folder.split("/"))
            if name != source and not name.startswith(source + "/"):
                return None
            rest = name[len(source):]
            return self._keep(encode_mutf7(self.base) + rest)
        root = f"{self.user}/Maildir"
        if self.folder.upper() == "INBOX":
            in_root = name[len(root) + 1:] if name.startswith(root + "/") else ""
            if in_root in ("cur", "new", "tmp") or in_root.startswith(("cur/", "new/")):
                return self._keep(name[len(root) + 1:])
            if name in (f"{root}/dovecot-uidlist", f"{root}/dovecot-keywords"):
                return name[len(root) + 1:]
            if name.startswith(f"{root}/.INBOX."):
                return self._keep(name[len(root) + 1:])
            return None
        source = "." + ".".join(encode_mutf7(p) for p in self.folder.split("/"))
        if not name.startswith(f"{root}/{source}"):
            return None
        rest = name[len(root) + 1 + len(source):]
        if rest and not rest.startswith(("/", ".")):
            return None  # ".Sent" is not ".Sent Items"
        return self._keep("." + encode_mutf7(self.base) + rest)

    @staticmethod
    def _keep(path: str) -> str | None:
        leaf = path.rsplit("/", 1)[-1]
        # tmp/ holds deliveries in progress: its files are not mail, the directory must be
        # there (Dovecot does not open a LAYOUT=fs maildir without it).
        if leaf.startswith(_DERIVED) or "/tmp/" in f"/{path}":
            return None
        return path


def destination_root(user: str, folder: str) -> str:
    """Where the restored folder goes: "Restored folder", for the public mailboxes'
    owner "<folder>/Restored folder" (beside the public mailbox itself, as NS8)."""
    return f"{folder.strip('/')}/{RESTORED_FOLDER}" if user == PUBLIC_OWNER else RESTORED_FOLDER


# ---------------------------------------------------------------- the repository


@dataclass
class Source:
    """A restic repository to read, with the environment restic needs for it."""

    repository: str
    env: dict[str, str] | None = None
    field: str = "repository"  # the input field an error about the repository names


def resolve_source(data: dict[str, Any], redis_url: str | None = None) -> Source:
    """The repository of a request: `repository`, else NS8's `destination` + `repopath`."""
    if data.get("repository"):
        return Source(data["repository"])
    destination, repopath = data.get("destination", ""), data.get("repopath", "")
    redis_url = redis_url or os.environ.get(AGENT_REDIS_ENV)
    if not redis_url:
        raise ContentError("destination", "backup_destination_not_found",
                           "no cluster here to resolve destination: give repository")
    import redis  # only with a cluster agent

    try:
        rdb = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5)
        known = rdb.exists(DESTINATION_KEY.format(destination))
        password = rdb.hget(PASSWORD_KEY, destination) if known else None
    except redis.RedisError as exc:
        raise MailError(f"cannot read the backup destination from Redis: {exc}") from exc
    if not known or not password:
        raise ContentError("destination", "backup_destination_not_found",
                           f"no backup destination {destination!r} in the cluster")
    env = {"RESTIC_PASSWORD": password.decode() if isinstance(password, bytes) else password}
    if os.environ.get("REDIS_USER"):  # the gateway takes the agent's own credentials
        env.update(RESTIC_REST_USERNAME=os.environ["REDIS_USER"],
                   RESTIC_REST_PASSWORD=os.environ.get("REDIS_PASSWORD", ""))
    gateway = os.environ.get(GATEWAY_ENV) or GATEWAY
    return Source(f"{gateway.rstrip('/')}/{destination}/{repopath.strip('/')}", env, "destination")


def _vmail_tar(instance: Instance, source: Source, snapshot: str) -> tuple[str, str]:
    """(snapshot id, path of the vmail tar in it); ContentError for a snapshot that is not a mail backup."""
    try:
        snap = restic.find_snapshot(instance, source.repository, snapshot, source.env)
    except restic.ResticError as exc:
        field = exc.field if exc.field == "snapshot" else source.field  # the password is the repository's
        raise ContentError(field, exc.error, str(exc)) from exc
    paths = snap.get("paths") or []
    if len(paths) != 1:
        raise ContentError("snapshot", "invalid_backup", f"snapshot {snapshot} is not a mail backup")
    return snap["id"], f"{paths[0].rstrip('/')}/{VMAIL_TAR}"


def _each_member(instance: Instance, source: Source, snapshot: str,
                 visit: Callable[[tarfile.TarFile, tarfile.TarInfo], None]) -> str:
    """Stream the snapshot's vmail tar through `visit`, member by member; return the snapshot id."""
    snap_id, path = _vmail_tar(instance, source, snapshot)
    proc = restic.dump(instance, source.repository, snap_id, path, source.env)
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                visit(tar, member)
    except tarfile.TarError as exc:
        proc.kill()
        proc.wait()
        raise ContentError("snapshot", "invalid_backup", f"snapshot {snapshot}: unreadable mail volume ({exc})")
    finally:
        if proc.poll() is None:
            proc.stdout.read()  # let restic finish writing
    try:
        restic.check_dump(proc, source.repository)
    except restic.ResticError as exc:
        raise ContentError("snapshot", "invalid_backup", str(exc)) from exc
    return snap_id


def snapshot_folders(instance: Instance, source: Source, snapshot: str, user: str) -> list[str]:
    """The IMAP folders of `user` in the snapshot (NS8's seek-snapshot-contents)."""
    names: list[str] = []
    _each_member(instance, source, snapshot, lambda _tar, m: names.append(m.name) if m.isdir() else None)
    return folders_of(user, names)


def extract_folder(instance: Instance, source: Source, snapshot: str, selection: FolderSelection,
                   dest: Path) -> int:
    """Write the folder's members (renamed into the scratch maildir) as the tar `dest`;
    return the number of message files. ContentError when the snapshot lacks the folder."""
    counts = {"messages": 0, "dirs": 0}
    with tarfile.open(dest, "w") as out:
        def keep(tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
            target = selection.target(member.name)
            if target is None or not (member.isfile() or member.isdir()):
                return
            member.name = target
            if member.isdir():
                counts["dirs"] += target.endswith("/cur") or target == "cur"
                out.addfile(member)
            else:
                counts["messages"] += "/cur/" in f"/{target}" or "/new/" in f"/{target}"
                out.addfile(member, tar.extractfile(member))

        _each_member(instance, source, snapshot, keep)
    if not counts["dirs"]:
        raise ContentError("folder", "folder_not_found",
                           f"no folder {selection.folder!r} of {selection.user} in snapshot {snapshot}")
    return counts["messages"]


# ---------------------------------------------------------------- the import


@dataclass
class Dovecot:
    """doveadm in the instance's dovecot container."""

    instance: Instance
    engine: Any

    @property
    def container(self) -> str:
        return self.instance.container_name("dovecot")

    def run(self, *args: str, check: bool = True) -> str:
        code, out = self.engine.exec(self.container, list(args))
        if check and code != 0:
            raise MailError(f"{' '.join(args[:3])} failed in {self.container}: {out.strip()[-300:]}")
        return out


def restore_folder(instance: Instance, engine: Any, source: Source, snapshot: str,
                   selection: FolderSelection) -> dict[str, Any]:
    """Restore the folder under its destination root; returns {"messages", "destination"}.

    Bad input (no such snapshot or folder) fails before the mailbox is touched. The
    scratch files (host and container) are removed on every path.
    """
    dovecot = Dovecot(instance, engine)
    # What a killed restore left (the caller holds the instance's action lock: none runs now).
    dovecot.run("sh", "-c", f'rm -rf "{VMAIL_IN_CONTAINER}"/{SCRATCH_PREFIX}*', check=False)
    scratch_dir = Path(tempfile.mkdtemp(prefix="restore-content-", dir=_host_scratch(instance)))
    in_container = f"{VMAIL_IN_CONTAINER}/{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
    root = destination_root(selection.user, selection.folder)
    restored = f"{root}/{selection.base}"
    try:
        archive = scratch_dir / "folder.tar"
        messages = extract_folder(instance, source, snapshot, selection, archive)
        dovecot.run("mkdir", "-p", in_container)
        code, out = engine.exec_with_input(dovecot.container, ["tar", "-x", "-C", in_container, "-f", "-"], archive)
        if code != 0:
            raise MailError(f"could not copy the restored folder into {dovecot.container}: {out.strip()[-300:]}")
        dovecot.run("chown", "-R", "vmail:vmail", in_container)
        _ensure_root(dovecot, selection.user, root)
        dovecot.run("doveadm", "mailbox", "delete", "-u", selection.user, "-r", "-s", restored, check=False)
        try:
            # The scratch maildir holds only the folder: import all of it (its own INBOX is
            # empty but for an INBOX restore; folders without messages are not made). No
            # quota while importing (NS8 disables it too); the quota "count" backend then
            # counts the new messages from their indexes.
            dovecot.run("doveadm", "-o", "plugin/quota=", "import", "-u", selection.user, "-s",
                        f"maildir:{in_container}{selection.layout}:INDEX=MEMORY", root, "all")
        except MailError:
            dovecot.run("doveadm", "mailbox", "delete", "-u", selection.user, "-r", "-s", restored, check=False)
            raise
        finally:  # the quota plugin was off: quota_clone's copy of the usage is stale
            forget_quota_usage(engine, instance, [selection.user])
    finally:
        dovecot.run("rm", "-rf", in_container, check=False)
        shutil.rmtree(scratch_dir, ignore_errors=True)
    return {"messages": messages, "destination": restored}


def _ensure_root(dovecot: Dovecot, user: str, root: str) -> None:
    """Create and subscribe the destination root and its parents (existing ones are kept)."""
    parts = root.split("/")
    for i in range(1, len(parts) + 1):
        name = "/".join(parts[:i])
        dovecot.run("doveadm", "mailbox", "create", "-u", user, name, check=False)
        dovecot.run("doveadm", "mailbox", "subscribe", "-u", user, name, check=False)


def _host_scratch(instance: Instance) -> Path:
    """The instance's private scratch root, without what killed actions left there."""
    from .backup import transfer

    root = transfer.work_root(instance)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    transfer.clean_stale_workdirs(instance)
    return root
