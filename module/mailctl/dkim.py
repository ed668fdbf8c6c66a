"""DKIM signing keys of the mail domains.

One RSA 2048 key per domain, selector "default", generated the first time signing is
enabled and kept when it is disabled (the published DNS record stays valid). The
private key is a secret file (<secrets>/dkim/<domain>.default.key, mode 0600); the
directory is mounted read-only into the rspamd container, whose reload script copies
the keys where the _rspamd user can read them. Whether a domain signs lives in the
state (domains.signing_domains), and rspamd's dkim_signing.conf is rendered from it.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .domains import signing_domains
from .secrets import write_secret
from .settings import Instance
from .state import Store

SELECTOR = "default"
KEY_BITS = 2048
KEY_DIR = "dkim"  # under the instance secrets dir; see stack.SECRET_DIRS
# Where rspamd finds the keys (images/rspamd/reload copies them there, 0640 root:_rspamd).
RSPAMD_KEY_DIR = "/var/lib/rspamd/dkim"


def key_path(instance: Instance, domain: str) -> Path:
    return instance.secrets_dir / KEY_DIR / f"{domain}.{SELECTOR}.key"


def ensure_key(instance: Instance, domain: str) -> bool:
    """Generate the domain's private key unless it exists; True when it was made now."""
    path = key_path(instance, domain)
    if path.is_file() and path.stat().st_size > 0:
        return False
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    write_secret(path, pem.decode())
    return True


def record_data(instance: Instance, domain: str) -> str | None:
    """The TXT data of default._domainkey.<domain> ("v=DKIM1; k=rsa; p=..."), None without a key."""
    path = key_path(instance, domain)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def zone_record(domain: str, data: str) -> str:
    """The record in zone file syntax, its text split in strings of at most 255 bytes."""
    chunks = [data[i:i + 250] for i in range(0, len(data), 250)]
    quoted = " ".join(f'"{c}"' for c in chunks)
    return f"{SELECTOR}._domainkey.{domain}. IN TXT ( {quoted} )"


def state(instance: Instance, store: Store, domain: str) -> dict[str, Any]:
    """The get-domain-dkim output of an existing domain (NS8's fields only: the selector is
    always `default`)."""
    out: dict[str, Any] = {"enabled": domain in signing_domains(store)}
    data = record_data(instance, domain)
    if data:
        out["dkimRecordData"] = data
        out["dkimFullRawRecord"] = zone_record(domain, data)
    return out


def render_context(store: Store) -> dict[str, Any]:
    """What rspamd's dkim_signing.conf is rendered with."""
    return {"domains": signing_domains(store), "selector": SELECTOR, "key_dir": RSPAMD_KEY_DIR}
