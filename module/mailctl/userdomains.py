"""User domains: where users and groups come from (embedded OpenLDAP or an external LDAP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .context import EMBEDDED_LDAP
from .state import Store


def list_user_domains(store: Store, secrets_dir: Path | None = None) -> list[dict[str, Any]]:
    """The embedded domain `local` first, then the external ones (never their passwords).

    With `secrets_dir`, external domains also say whether a bind password is stored.
    """
    embedded = {"name": EMBEDDED_LDAP["name"], "schema": EMBEDDED_LDAP["schema"], "location": "internal",
                "url": EMBEDDED_LDAP["url"], "base_dn": EMBEDDED_LDAP["base_dn"]}
    external = []
    for d in store.get("external_user_domains") or []:
        info = {"name": d["name"], "schema": d["schema"], "location": "external", "url": d["url"],
                "base_dn": d["base_dn"], "bind_dn": d.get("bind_dn") or "", "tls": bool(d.get("tls")),
                "tls_verify": bool(d.get("tls_verify"))}
        if secrets_dir is not None:
            info["has_password"] = bool(info["bind_dn"]) and _has_content(secrets_dir / bind_secret_name(d["name"]))
        external.append(info)
    return [embedded, *external]


def bind_secret_name(domain: str) -> str:
    """The secret file holding an external user domain's bind password."""
    return f"ldap-bind-password-{domain}"


def _has_content(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def find_user_domain(store: Store, name: str) -> dict[str, Any] | None:
    return next((d for d in list_user_domains(store) if d["name"] == name), None)
