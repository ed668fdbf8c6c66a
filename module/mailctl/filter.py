"""The Filter page: antispam and antivirus settings, and the rules that bypass the filter.

Settings live in the state's settings table ("antispam", "antivirus", defaults in
state.DEFAULT_SETTINGS); bypass rules in the bypass_rules table. Rspamd's actions,
greylist, rbl, antivirus and settings (bypass) files are rendered from both.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .settings import Instance
from .stack import WEB_PORT
from .state import DEFAULT_SETTINGS, Store

# Installed memory a host should have for ClamAV's official signatures (MiB): the
# database takes about 1.2 GiB once loaded.
OFFICIAL_SIGS_RECOMMENDED_MIB = 3072
BYPASS_TYPES = ("ip", "cidr", "email", "domain")


def _merged(current: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """`current` updated with `change`, nested objects merged key by key."""
    out = dict(current)
    for key, value in change.items():
        out[key] = _merged(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def antispam(store: Store) -> dict[str, Any]:
    return _merged(DEFAULT_SETTINGS["antispam"], store.get("antispam") or {})


def antivirus(store: Store) -> dict[str, Any]:
    return _merged(DEFAULT_SETTINGS["antivirus"], store.get("antivirus") or {})


def apply_filter_change(ctx, data: dict[str, Any]) -> None:
    """set-filter-configuration: merge the given fields into the stored settings, checked.

    antispam.prefix_email_subject (NS8) is the spam subject prefix of the mailbox settings.
    """
    change = dict(data.get("antispam") or {})
    change.pop("rspamd_url", None)  # read-only fields of get-filter-configuration, sent back by clients
    prefix = change.pop("prefix_email_subject", None)
    if prefix is not None:
        mailbox = ctx.store.get("mailbox_settings")
        mailbox["spam_prefix"] = {**mailbox.get("spam_prefix", {}), **prefix}
        ctx.store.set("mailbox_settings", mailbox)
    spam = _merged(antispam(ctx.store), change)
    virus_change = {k: v for k, v in (data.get("antivirus") or {}).items() if k != "memory_info"}
    virus = _merged(antivirus(ctx.store), virus_change)
    flag, deny = spam["spam_flag_threshold"], spam["deny_message_threshold"]
    if deny <= flag:
        ctx.reject("antispam.deny_message_threshold", "deny_threshold_not_above_flag_threshold", deny,
                   f"must be higher than the spam flag threshold ({flag})")
    grey = spam["greylist"]
    if grey["enabled"] and grey["threshold"] >= flag:
        ctx.reject("antispam.greylist.threshold", "greylist_threshold_not_below_flag_threshold",
                   grey["threshold"], f"must be lower than the spam flag threshold ({flag})")
    ctx.store.set("antispam", spam)
    ctx.store.set("antivirus", virus)


def rspamd_url(instance: Instance, hostname: str) -> str:
    """The Rspamd web UI, through the admin UI's proxy (`mailctl serve`, /rspamd/), on the
    bind address (the host name when all)."""
    host = instance.bind if instance.bind not in ("", "0.0.0.0", "::") else hostname
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{instance.host_port(WEB_PORT)}/rspamd/"


def host_memory_mib() -> float:
    """Installed memory of this host in MiB (0 if unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def clamav_memory_mib(ctx) -> float:
    """Memory in use by the clamav container in MiB (0 when it does not run)."""
    try:
        return round(ctx.engine.stats(ctx.instance.container_name("clamav")) / 1024**2, 1)
    except Exception:  # noqa: BLE001 - an instance that is down simply reports 0
        return 0.0


# Bypass rules: stored as the client sent them (NS8 lists them so); compared and given to
# rspamd in canonical form: addresses and domains lower-case, IPs and networks parsed.
def canonical_value(rule: dict[str, Any]) -> str:
    """The value of a rule as rspamd matches it (and as rules are told apart)."""
    value = rule["value"].strip()
    if rule["type"] in ("email", "domain"):
        return value.lower()
    if rule["type"] == "ip":
        return str(ipaddress.ip_address(value))
    return str(ipaddress.ip_network(value, strict=False))


def list_bypass_rules(store: Store) -> list[dict[str, Any]]:
    rows = store.conn.execute(
        "SELECT type, direction, value FROM bypass_rules ORDER BY direction, type, value").fetchall()
    return [dict(r) for r in rows]


def find_bypass_rule(store: Store, rule: dict[str, Any]) -> dict[str, Any] | None:
    """The stored rule equal to `rule` (same type, direction and canonical value)."""
    wanted = canonical_value(rule)
    return next((r for r in list_bypass_rules(store) if r["type"] == rule["type"]
                 and r["direction"] == rule["direction"] and canonical_value(r) == wanted), None)


def add_bypass_rule(store: Store, rule: dict[str, Any]) -> bool:
    """Store `rule` as given; False when an equal one exists."""
    if find_bypass_rule(store, rule) is not None:
        return False
    store.conn.execute("INSERT INTO bypass_rules(type, direction, value) VALUES(?, ?, ?)",
                       (rule["type"], rule["direction"], rule["value"]))
    return True


def remove_bypass_rule(store: Store, rule: dict[str, Any]) -> bool:
    """Delete the stored rule equal to `rule`; False when there is none."""
    found = find_bypass_rule(store, rule)
    if found is None:
        return False
    store.conn.execute("DELETE FROM bypass_rules WHERE type = ? AND direction = ? AND value = ?",
                       (found["type"], found["direction"], found["value"]))
    return True


def bypass_context(store: Store) -> dict[str, list[str]]:
    """Bypass rules as rspamd's settings module matches them.

    ips: client addresses and networks (a radix map file); from/to: envelope sender or
    recipient, full addresses as they are and domains as "@domain".
    """
    out: dict[str, list[str]] = {"ips": [], "from": [], "to": []}
    for r in list_bypass_rules(store):
        value = canonical_value(r)
        if r["type"] in ("ip", "cidr"):
            out["ips"].append(value)
        else:
            out[r["direction"]].append(value if r["type"] == "email" else f"@{value}")
    return out
