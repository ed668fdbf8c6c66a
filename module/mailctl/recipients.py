"""How a destination is written for postfix: the internal pseudo domains.

Postfix delivers to these after alias expansion: a user's mailbox (LMTP to dovecot,
which maps user@mailbox.internal to the mailbox "user"), the members of a group
(expanded by an LDAP lookup), a public mailbox. The *_targets tables of the state hold
destinations in this form, so postfix reads them without knowing the JSON destinations.
"""

from __future__ import annotations

from typing import Any

MAILBOX_DOMAIN = "mailbox.internal"
GROUP_DOMAIN = "group.internal"
PUBLIC_DOMAIN = "public.internal"


# NS8 writes a public mailbox destination as "vmail+<name>" and accepts that form as input.
PUBLIC_PREFIX = "vmail+"


def recipient_of(destination: dict[str, Any]) -> str:
    """The postfix recipient a destination expands to."""
    name = destination["name"]
    return {
        "user": f"{quote_local(name.lower())}@{MAILBOX_DOMAIN}",
        "group": f"{quote_local(name.lower())}@{GROUP_DOMAIN}",
        "public": f"{quote_local(name)}@{PUBLIC_DOMAIN}",
    }.get(destination["dtype"], name)


def quote_local(local: str) -> str:
    """A local part as postfix must read it in an alias result: quoted when it has a
    space (a group such as "domain admins"), else postfix would read two addresses.
    (postfix looks the quoted form up: sqlite-group-key.cf unquotes it for LDAP.)"""
    return f'"{local}"' if " " in local else local


def destination_name(dest: dict[str, Any]) -> str:
    """The name of an input destination: `name`, or the legacy key named like its dtype
    (NS8's examples: {"dtype": "user", "user": "admin"}); vmail+X is the public mailbox X."""
    name = dest.get("name") or dest[dest["dtype"]]
    if dest["dtype"] == "public" and name.startswith(PUBLIC_PREFIX):
        name = name[len(PUBLIC_PREFIX):]
    return name
