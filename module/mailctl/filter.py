"""The Filter page: antispam and antivirus settings, and the rules that bypass the filter.

Settings live in the state's settings table ("antispam", "antivirus", defaults in
state.DEFAULT_SETTINGS); bypass rules in the bypass_rules table. Rspamd's actions,
greylist, rbl, antivirus and settings (bypass) files are rendered from both.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from .settings import Instance
from .stack import WEB_PORT, redis_cli
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
    for field in ("rspamd_url", "dns"):  # read-only fields of get-filter-configuration, sent back by clients
        change.pop(field, None)
    if "bayes" in change:
        change["bayes"] = {k: v for k, v in change["bayes"].items() if k != "learned"}
    prefix = change.pop("prefix_email_subject", None)
    if prefix is not None:
        mailbox = ctx.store.get("mailbox_settings")
        mailbox["spam_prefix"] = {**mailbox.get("spam_prefix", {}), **prefix}
        ctx.store.set("mailbox_settings", mailbox)
    spam = _merged(antispam(ctx.store), change)
    virus_change = {k: v for k, v in (data.get("antivirus") or {}).items()
                    if k not in ("memory_info", "databases", "signature_updates")}
    virus = _merged(antivirus(ctx.store), virus_change)
    flag, deny = spam["spam_flag_threshold"], spam["deny_message_threshold"]
    if deny <= flag:
        ctx.reject("antispam.deny_message_threshold", "deny_threshold_not_above_flag_threshold", deny,
                   f"must be higher than the spam flag threshold ({flag})")
    grey = spam["greylist"]
    if grey["enabled"] and grey["threshold"] >= flag:
        ctx.reject("antispam.greylist.threshold", "greylist_threshold_not_below_flag_threshold",
                   grey["threshold"], f"must be lower than the spam flag threshold ({flag})")
    if spam["dns_resolver"]:
        resolver = parse_resolver(spam["dns_resolver"])
        if resolver is None:
            ctx.reject("antispam.dns_resolver", "dns_resolver_invalid", spam["dns_resolver"],
                       "an IP address with an optional port: 192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53")
        spam["dns_resolver"] = resolver
    ctx.store.set("antispam", spam)
    ctx.store.set("antivirus", virus)


# What rspamd turns off while the Internet's DNS does not answer (the rendered
# templates/rspamd/offline.d files, applied by images/rspamd/reload).
OFFLINE_CHECKS = ("rbl", "spf", "dmarc", "fuzzy_check", "asn", "hfilter_hostnames", "phishtank",
                  "remote_maps", "whitelist")


def parse_resolver(text: str) -> str | None:
    """The canonical "IP:port" (IPv6 "[IP]:port") of a resolver address, port 53 by default."""
    text = text.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return f"[{address}]:{int(port)}" if address.version == 6 else f"{address}:{int(port)}"


def _exec(ctx, daemon: str, command: list[str]) -> str | None:
    """stdout of `command` in the instance's `daemon` container; None when it fails."""
    try:
        code, out = ctx.engine.exec(ctx.instance.container_name(daemon), command)
    except Exception:  # noqa: BLE001 - a stopped instance reports unknown values
        return None
    return out if code == 0 else None


def bayes_learned(ctx) -> dict[str, int | None]:
    """Spam and ham messages the Bayes classifier has learned (None: Redis does not answer).

    Read from the classifier's Redis hash (RS, one for the whole server) rather than
    rspamd's statistics, which lag up to a minute behind.
    """
    out = _exec(ctx, "redis", redis_cli("--raw", "HMGET", "RS", "learns_spam", "learns_ham"))
    if out is None:
        return {"spam": None, "ham": None}
    lines = (out.splitlines() + ["", ""])[:2]
    return {"spam": int(lines[0] or 0), "ham": int(lines[1] or 0)}


def dns_status(ctx, spam: dict[str, Any]) -> dict[str, Any]:
    """Whether rspamd's DNS checks are active: the last probe of images/rspamd/reload.

    `spam`: the antispam settings (DNS block lists count as inactive only when they are on).
    """
    try:
        probe = json.loads(_exec(ctx, "rspamd", ["cat", "/run/rspamd-dns.json"]) or "null") or {}
    except ValueError:
        probe = {}
    online = probe.get("online")
    status: dict[str, Any] = {
        "online": online, "checked_at": probe.get("checked_at"), "since": probe.get("since"),
        "inactive_checks": [], "reason": "",
    }
    if online is None:
        status["reason"] = "rspamd is not running"
    elif not online:
        status["inactive_checks"] = [c for c in OFFLINE_CHECKS if c != "rbl" or spam["rbl"]["enabled"]]
        resolver = spam["dns_resolver"] or "the host's resolver"
        status["reason"] = (f"{resolver} does not resolve Internet names (maps.rspamd.com); checked "
                            "every 30 s, these checks come back on by themselves")
    return status


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
