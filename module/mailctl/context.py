"""The data every configuration template is rendered with, read from the state."""

from __future__ import annotations

import socket
from typing import Any

from .state import Store

EMBEDDED_LDAP = {"name": "local", "schema": "rfc2307", "url": "ldap://openldap", "base_dn": "dc=mail,dc=local"}


def default_hostname() -> str:
    """This host's FQDN, or a made-up one when the host has no domain."""
    fqdn = socket.getfqdn()
    return fqdn if "." in fqdn and not fqdn.endswith(".") else f"{socket.gethostname()}.localdomain"


def render_context(store: Store) -> dict[str, Any]:
    settings = store.settings()
    hostname = settings["hostname"] or default_hostname()
    domains = store.list_domains()
    mydomain = settings["mail_domain"] or (domains[0]["domain"] if domains else hostname.split(".", 1)[1])
    return {
        **settings,
        "hostname": hostname,
        "mydomain": mydomain,
        "domains": domains,
        "ldap": EMBEDDED_LDAP,
        "relay_networks": settings.get("relay", {}).get("networks", []) if settings.get("relay") else [],
        "antivirus": settings.get("antivirus") or {"enabled": True, "clamav_official_sigs": False},
    }
