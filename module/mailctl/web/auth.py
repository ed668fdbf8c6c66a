"""Who may log in, sessions, and the login throttle.

Two kinds of accounts: the bootstrap `admin`, whose password is a secret made at
create time (`mailctl admin-password` prints it), checked against its scrypt hash;
and the members of the user domain's group `domain admins` (the NS8 convention),
checked by binding to the user domain's LDAP server as the user.
Sessions live in the server's memory: a restart logs everybody out.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field

from ..directory import Directory, DirectoryError, open_directory
from ..secrets import ADMIN_PASSWORD_HASH, scrypt_verify
from ..settings import Instance
from ..state import Store

ADMIN_USER = "admin"
ADMINS_GROUP = "domain admins"
# A user domain user name (actions/definitions.json user_name): nothing an LDAP filter or DN could misread.
_USER_NAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9._-]{0,62}[A-Za-z0-9_-])?$")


def check_credentials(instance: Instance, username: str, password: str) -> str | None:
    """The account name if `username`/`password` may log in, else None. Blocking (LDAP, scrypt)."""
    if not password:
        return None  # an empty password would be an anonymous LDAP bind
    if username == ADMIN_USER:
        hash_file = instance.secrets_dir / ADMIN_PASSWORD_HASH
        return ADMIN_USER if hash_file.exists() and scrypt_verify(password, hash_file.read_text()) else None
    if not _USER_NAME.match(username) or not instance.db_path.exists():
        return None
    return username.lower() if _is_domain_admin(instance, username.lower(), password) else None


def _is_domain_admin(instance: Instance, username: str, password: str) -> bool:
    """A member of `domain admins` in the selected user domain whose password binds."""
    store = Store(instance.db_path)
    try:
        directory = open_directory(instance, store)
    except DirectoryError:
        return False
    finally:
        store.close()
    try:
        group = directory.group(ADMINS_GROUP)
        user = directory.user(username) if group and username in group["members"] else None
    except DirectoryError:
        return False
    finally:
        directory.close()
    if user is None:
        return False
    try:
        Directory(directory.conf, directory.url, user["dn"], password).close()
    except DirectoryError:
        return False  # wrong password (or the server went away)
    return True


@dataclass
class Session:
    username: str
    csrf_token: str
    created: float = field(default_factory=time.monotonic)
    last_seen: float = field(default_factory=time.monotonic)


class Sessions:
    """Random session ids -> Session, with an idle and an absolute time limit."""

    def __init__(self, idle: float = 3600, lifetime: float = 12 * 3600):
        self.idle, self.lifetime = idle, lifetime
        self._sessions: dict[str, Session] = {}

    def create(self, username: str) -> tuple[str, Session]:
        self._expire()
        session_id = secrets.token_urlsafe(32)
        session = Session(username, secrets.token_urlsafe(32))
        self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        session = self._sessions.get(session_id or "")
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > self.idle or now - session.created > self.lifetime:
            del self._sessions[session_id]
            return None
        session.last_seen = now
        return session

    def drop(self, session_id: str | None) -> None:
        self._sessions.pop(session_id or "", None)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid, s in list(self._sessions.items()):
            if now - s.last_seen > self.idle or now - s.created > self.lifetime:
                del self._sessions[sid]


class LoginThrottle:
    """Failed logins per client address: each one answered more slowly, then refused for a while.

    After `max_failures` failures within `window` seconds, the address gets 429 for
    `lockout` seconds, even with the right password. A successful login clears its count.
    """

    def __init__(self, max_failures: int = 5, window: float = 900, lockout: float = 300, base_delay: float = 0.25):
        self.max_failures, self.window, self.lockout, self.base_delay = max_failures, window, lockout, base_delay
        self._failures: dict[str, list[float]] = {}
        self._locked_until: dict[str, float] = {}

    def retry_after(self, address: str) -> int:
        """Seconds this address must wait before trying again (0: it may try now)."""
        until = self._locked_until.get(address, 0)
        remaining = until - time.monotonic()
        if remaining <= 0:
            self._locked_until.pop(address, None)
            return 0
        return int(remaining) + 1

    def failed(self, address: str) -> float:
        """Record a failure; return the delay (seconds) to hold the answer back."""
        now = time.monotonic()
        recent = [t for t in self._failures.get(address, []) if now - t < self.window] + [now]
        self._failures[address] = recent
        if len(recent) >= self.max_failures:
            self._locked_until[address] = now + self.lockout
            self._failures.pop(address, None)
        if len(self._failures) > 10000:  # bound the memory a scan from many addresses can take
            self._failures.clear()
        return self.base_delay * 2 ** (len(recent) - 1)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
