"""get-facts: anonymous usage counters (no names, no addresses), read from the state.

Users are counted in the selected user domain; when that directory cannot be reached
(the instance is down, an external LDAP is offline) the mailboxes known to the state
are counted instead, so the facts never fail.
"""

from __future__ import annotations

from typing import Any

from . import filter as filter_settings
from . import relayrules
from .addresses import public_mailboxes
from .context import user_domain_config
from .directory import open_directory
from .errors import MailError
from .settings import Instance
from .state import Store


def _count(store: Store, sql: str) -> int:
    return int(store.conn.execute(sql).fetchone()[0])


def user_count(instance: Instance, store: Store) -> int:
    try:
        directory = open_directory(instance, store)
        try:
            return len(directory.users())
        finally:
            directory.close()
    except MailError:
        return _count(store, "SELECT count(*) FROM mailboxes")


def collect(instance: Instance, store: Store) -> dict[str, Any]:
    settings = store.settings()
    antispam = filter_settings.antispam(store)
    antivirus = filter_settings.antivirus(store)
    mailbox = settings["mailbox_settings"]
    userdomain = user_domain_config(store)
    return {
        "domains": _count(store, "SELECT count(*) FROM domains"),
        "addresses": _count(store, "SELECT count(*) FROM addresses"),
        "user_mailboxes": user_count(instance, store),
        "public_mailboxes": len(public_mailboxes(store) or ()),
        "relay_rules": _count(store, "SELECT count(*) FROM relay_rules"),
        "bypass_rules": _count(store, "SELECT count(*) FROM bypass_rules"),
        "master_users": len(settings.get("master_users") or []),
        "features": {
            "dkim_domains": _count(store, "SELECT count(*) FROM domains WHERE dkim = 1"),
            "catchall_domains": _count(store, "SELECT count(*) FROM domains WHERE catchall IS NOT NULL"),
            "bcc_domains": _count(store, "SELECT count(*) FROM domains WHERE bccaddr IS NOT NULL AND bccaddr != ''"),
            "always_bcc": bool(settings.get("always_bcc")),
            "relay_default_rule": relayrules.default_rule(store) is not None,
            "relay_networks": len(settings["relay"].get("networks") or []),
            "restricted_sender": bool(settings["relay"].get("postfix_restricted_sender")),
            "antispam": bool(antispam.get("enabled")),
            "greylist": bool((antispam.get("greylist") or {}).get("enabled")),
            "rbl": bool((antispam.get("rbl") or {}).get("enabled")),
            "antivirus": bool(antivirus.get("enabled")),
            "clamav_official_sigs": bool(antivirus.get("clamav_official_sigs")),
            "spam_folder": bool(mailbox["spam_folder"].get("enabled")),
            "sharedseen": bool(mailbox["sharedseen"].get("enabled")),
            "user_domain_schema": userdomain["schema"],
            "external_user_domain": not userdomain["embedded"],
        },
    }
