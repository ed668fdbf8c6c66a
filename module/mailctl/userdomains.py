"""User domains: where users and groups come from (embedded OpenLDAP or an external LDAP)."""

from __future__ import annotations

from typing import Any

from .context import EMBEDDED_LDAP
from .state import Store


def list_user_domains(store: Store) -> list[dict[str, Any]]:
    """The embedded domain `local` first, then the external ones (never their passwords)."""
    embedded = {"name": EMBEDDED_LDAP["name"], "schema": EMBEDDED_LDAP["schema"], "location": "internal",
                "url": EMBEDDED_LDAP["url"], "base_dn": EMBEDDED_LDAP["base_dn"]}
    external = [
        {"name": d["name"], "schema": d["schema"], "location": "external", "url": d["url"],
         "base_dn": d["base_dn"]}
        for d in store.get("external_user_domains") or []
    ]
    return [embedded, *external]


def find_user_domain(store: Store, name: str) -> dict[str, Any] | None:
    return next((d for d in list_user_domains(store) if d["name"] == name), None)
