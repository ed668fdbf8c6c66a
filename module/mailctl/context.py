"""The data every configuration template is rendered with, read from the state."""

from __future__ import annotations

import socket
from typing import Any

from . import dkim, domains, relayrules, signatures
from . import filter as filter_settings
from .recipients import GROUP_DOMAIN, MAILBOX_DOMAIN, PUBLIC_DOMAIN
from .state import Store

# The CA bundle that checks an external LDAP server's certificate (tls_verify): Debian's,
# the same path in the daemon images and on the host running the actions.
SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"

EMBEDDED_LDAP = {"name": "local", "schema": "rfc2307", "url": "ldap://openldap", "base_dn": "dc=mail,dc=local"}
# The embedded directory answers no anonymous search: postfix and dovecot bind as this
# read-only DN (made by images/openldap/entrypoint), with the secret ldap-reader-password.
EMBEDDED_READER_DN = f"cn=reader,{EMBEDDED_LDAP['base_dn']}"
READER_SECRET = "ldap-reader-password"
BIND_SECRET = "ldap-bind-password"  # the selected external domain's bind password

# How users and groups look in each LDAP schema the module understands.
LDAP_SCHEMAS: dict[str, dict[str, Any]] = {
    "rfc2307": {
        "user_filter": "(objectClass=posixAccount)", "user_attr": "uid",
        "group_filter": "(objectClass=posixGroup)", "group_attr": "cn",
        "member_attr": "memberUid", "member_is_dn": False,
        "display_attr": "cn", "mail_attr": "mail",
    },
    "ad": {
        "user_filter": "(&(objectClass=user)(!(objectClass=computer)))", "user_attr": "sAMAccountName",
        "group_filter": "(objectClass=group)", "group_attr": "sAMAccountName",
        "member_attr": "member", "member_is_dn": True,
        "display_attr": "displayName", "mail_attr": "mail",
    },
}


def default_hostname() -> str:
    """This host's FQDN, or a made-up one when the host has no domain."""
    fqdn = socket.getfqdn()
    return fqdn if "." in fqdn and not fqdn.endswith(".") else f"{socket.gethostname()}.localdomain"


def user_domain_config(store: Store, name: str | None = None) -> dict[str, Any]:
    """The selected user domain with its schema's attribute names (no password)."""
    name = name or store.get("user_domain")
    domain = EMBEDDED_LDAP
    for external in store.get("external_user_domains") or []:
        if external["name"] == name:
            domain = external
    embedded = domain is EMBEDDED_LDAP
    return {
        "name": domain["name"], "schema": domain["schema"], "url": domain["url"], "base_dn": domain["base_dn"],
        "bind_dn": EMBEDDED_READER_DN if embedded else domain.get("bind_dn") or "",
        # the secret file whose content is the bind password (__SECRET_<name>__ in the files)
        "bind_secret": READER_SECRET if embedded else BIND_SECRET,
        "tls": domain.get("tls", False),
        "tls_verify": domain.get("tls_verify", False), "ca_file": SYSTEM_CA_FILE,
        "embedded": embedded,
        **LDAP_SCHEMAS[domain["schema"]],
    }


def quota_in_use(store: Store, settings: dict[str, Any]) -> bool:
    """Whether any mailbox has a quota: a default limit, or a custom one above 0 (0 = none).

    Without one, postfix skips dovecot's quota-status check at RCPT (it could only answer
    DUNNO): a policy round trip and a dovecot user lookup less for every recipient."""
    if settings["mailbox_settings"]["quota"]["limit"] > 0:
        return True
    return store.conn.execute(
        "SELECT 1 FROM mailboxes WHERE quota_custom = 1 AND quota_limit > 0 LIMIT 1").fetchone() is not None


def render_context(store: Store) -> dict[str, Any]:
    settings = store.settings()
    hostname = settings["hostname"] or default_hostname()
    # Not derived from the domain list: adding a domain must not change main.cf (no reload).
    mydomain = settings["mail_domain"] or hostname.split(".", 1)[1]
    return {
        **settings,
        "hostname": hostname,
        "mydomain": mydomain,
        "domains": domains.list_domains(store),
        "ldap": EMBEDDED_LDAP,
        "userdomain": user_domain_config(store),
        "mailbox_domain": MAILBOX_DOMAIN,
        "group_domain": GROUP_DOMAIN,
        "public_domain": PUBLIC_DOMAIN,
        "relay_networks": settings["relay"]["networks"],
        "restricted_sender": settings["relay"]["postfix_restricted_sender"],
        "always_bcc": settings.get("always_bcc") or "",
        "relay_default": relayrules.default_rule(store),   # the enabled `*` relay rule or None
        "mailbox": settings["mailbox_settings"],
        "quota_in_use": quota_in_use(store, settings),
        "antivirus": filter_settings.antivirus(store),
        "antispam": filter_settings.antispam(store),
        "dkim": dkim.render_context(store),
        "bypass": filter_settings.bypass_context(store),
        # The third-party signature databases of the rating (images/clamav/update-signatures).
        "third_party_sigs": signatures.render_context(filter_settings.antivirus(store)),
        "system_ca_file": SYSTEM_CA_FILE,
    }
