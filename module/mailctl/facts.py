"""get-facts: anonymous usage counters (no names, no addresses), read from the state.

Users are counted in the selected user domain; when that directory cannot be reached
(the instance is down, an external LDAP is offline) the mailboxes known to the state
are counted instead, so the facts never fail.
"""

from __future__ import annotations

from typing import Any

from . import addresses, domains, mailboxes, publicmailboxes, relayrules
from . import filter as filter_settings
from .context import user_domain_config
from .directory import open_directory
from .errors import MailError
from .settings import Instance
from .state import Store


def user_count(instance: Instance, store: Store) -> int:
    try:
        directory = open_directory(instance, store)
        try:
            return len(directory.users())
        finally:
            directory.close()
    except MailError:
        return len(mailboxes.list_mailboxes(store))


def collect(instance: Instance, store: Store) -> dict[str, Any]:
    settings = store.settings()
    antispam = filter_settings.antispam(store)
    antivirus = filter_settings.antivirus(store)
    mailbox = settings["mailbox_settings"]
    userdomain = user_domain_config(store)
    mail_domains = domains.list_domains(store)
    return {
        "domains": len(mail_domains),
        "addresses": len(addresses.stored_addresses(store)),
        "user_mailboxes": user_count(instance, store),
        "public_mailboxes": len(publicmailboxes.names(store)),
        "relay_rules": len(relayrules.list_rules(store)),
        "bypass_rules": len(filter_settings.list_bypass_rules(store)),
        "master_users": len(settings.get("master_users") or []),
        "features": {
            "dkim_domains": len(domains.signing_domains(store)),
            "catchall_domains": sum(1 for d in mail_domains if d["catchall"]),
            "bcc_domains": sum(1 for d in mail_domains if d["bccaddr"]),
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
