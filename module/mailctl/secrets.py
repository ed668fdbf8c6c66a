"""Secret files of an instance: mode 0600 under <state>/secrets, never printed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets as _random
from pathlib import Path

from passlib.hash import sha512_crypt

from .settings import Instance
from .stack import SECRET_DIRS, SECRETS


def _mounted(path: Path) -> bool:
    """A secret file bind-mounted into a container (see stack.SECRETS)."""
    return any(path.name in names for names in SECRETS.values())


def write_secret(path: Path, content: str) -> None:
    """Write `content` with mode 0600 from the first byte.

    A new file is written atomically (temporary file + rename). A file that is
    bind-mounted into a container is rewritten in place instead: a bind mount of a
    single file keeps the inode it was made with, so a renamed-over file would stay
    invisible to the running container.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if _mounted(path) and path.is_file():
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(content)
        return
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.replace(tmp, path)


def read_secret(instance: Instance, name: str) -> str:
    return (instance.secrets_dir / name).read_text()


# The bootstrap `admin` account of the web UI (mailctl.web.auth): its password, and its hash.
ADMIN_PASSWORD = "web-admin-password"
ADMIN_PASSWORD_HASH = "web-admin-password.hash"


def reset_admin_password(instance: Instance) -> str:
    """Give the web `admin` account a new random password and return it."""
    password = _random.token_urlsafe(15)
    write_secret(instance.secrets_dir / ADMIN_PASSWORD_HASH, scrypt_hash(password))
    write_secret(instance.secrets_dir / ADMIN_PASSWORD, password)
    return password


def ensure_secrets(instance: Instance) -> None:
    """Create every secret file a container mounts, generating passwords once."""
    generated = {
        "ldap-admin-password": lambda: _random.token_urlsafe(24),
        "ldap-reader-password": lambda: _random.token_urlsafe(24),
        "redis-password": lambda: _random.token_urlsafe(24),
        "rspamd-admin-password": lambda: _random.token_urlsafe(18),
        "vmail-master-password": lambda: _random.token_urlsafe(18),
        ADMIN_PASSWORD: lambda: _random.token_urlsafe(15),
    }
    for name, make in generated.items():
        path = instance.secrets_dir / name
        if not path.exists() or path.stat().st_size == 0:  # an empty file: made by an older version
            write_secret(path, make())
    # Redis requires a password (redis.conf includes redis-auth.conf); rspamd sends it.
    redis_password = read_secret(instance, "redis-password")
    for name, content in (("redis-auth.conf", f"requirepass {redis_password}\n"),
                          ("rspamd-redis.inc", f'password = "{redis_password}";\n')):
        path = instance.secrets_dir / name
        if not path.exists() or path.read_text() != content:
            write_secret(path, content)
    controller = instance.secrets_dir / "rspamd-controller.inc"
    if not controller.exists():
        password = read_secret(instance, "rspamd-admin-password")
        write_secret(controller, f'bind_socket = "*:11334";\npassword = "{password}";\n'
                                 f'enable_password = "{password}";\n')
    # The web `admin` account is checked against a scrypt hash; the clear text is kept only
    # so that `mailctl admin-password` can print it to root.
    if not (instance.secrets_dir / ADMIN_PASSWORD_HASH).exists():
        write_secret(instance.secrets_dir / ADMIN_PASSWORD_HASH, scrypt_hash(read_secret(instance, ADMIN_PASSWORD)))
    # rspamd's controller password for dovecot's Bayes learning (rspamd-learn).
    learn = instance.secrets_dir / "dovecot-rspamd-password"
    if not learn.exists() or learn.stat().st_size == 0:
        write_secret(learn, read_secret(instance, "rspamd-admin-password"))
    # The built-in master user "vmail" (reveal-master-credentials), a dovecot passwd-file;
    # a hash of the older {SSHA512} scheme is made again with SHA512-CRYPT.
    masters = instance.secrets_dir / "dovecot-master-users"
    if not masters.exists() or not masters.read_text().startswith("vmail:{SHA512-CRYPT}"):
        hashed = sha512_crypt_hash(read_secret(instance, "vmail-master-password"))
        write_secret(masters, f"vmail:{{SHA512-CRYPT}}{hashed}\n")
    for names in SECRETS.values():
        for name in names:
            if not (instance.secrets_dir / name).exists():
                write_secret(instance.secrets_dir / name, "")
    for names in SECRET_DIRS.values():
        for name in names:
            (instance.secrets_dir / name).mkdir(mode=0o700, exist_ok=True)


# SHA512-CRYPT rounds: glibc's default, what /etc/shadow and Dovecot use; every IMAP or
# SMTP login costs slapd one such hash.
HASH_ROUNDS = 5000


def sha512_crypt_hash(password: str) -> str:
    """A SHA512-CRYPT hash ($6$salt$...): slapd ({CRYPT}) and dovecot ({SHA512-CRYPT}) read it."""
    return sha512_crypt.using(rounds=HASH_ROUNDS).hash(password)


# scrypt cost: about 50 ms and 16 MiB per check, cheap for a login, dear for a guesser.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def scrypt_hash(password: str) -> str:
    """`scrypt$n$r$p$salt$digest` (base64 parts) of `password`, with a random salt."""
    salt = _random.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def scrypt_verify(password: str, stored: str) -> bool:
    """True if `password` matches a hash made by scrypt_hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.strip().split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), dklen=len(expected),
                                n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)
