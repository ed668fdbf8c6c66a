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


def recipient_of(destination: dict[str, Any]) -> str:
    """The postfix recipient a destination expands to."""
    name = destination["name"]
    return {
        "user": f"{name.lower()}@{MAILBOX_DOMAIN}",
        "group": f"{name.lower()}@{GROUP_DOMAIN}",
        "public": f"{name}@{PUBLIC_DOMAIN}",
    }.get(destination["dtype"], name)
