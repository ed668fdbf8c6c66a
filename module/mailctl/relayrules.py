"""Relay rules: send matching mail through another SMTP server (a smarthost).

Rules live in the `relay_rules` table and postfix reads them at query time
(templates/postfix/sqlite-relay-*.cf). Evaluation order, as in the seed:

- sender rules: `sender_dependent_relayhost_maps` (postfix tries the full address,
  then `@domain`: an exact address wins over its domain);
- recipient rules: `transport_maps` (full address, then domain), delivered by the
  `rcpt_smtp`/`rcpt_smtps` transports, which never use a sender rule's credentials;
- the default rule `*`: `relayhost` in main.cf.

Postfix consults `transport_maps` before the sender-dependent maps; so that the
sender rule wins when one message matches both, a recipient that matches a recipient
rule gets the restriction class `relay_sender_first` at RCPT time. FILTER (the only
override of transport_maps) is per message, and a local recipient of the same message
must stay local: so the class gives the message `FILTER relay_split:[127.0.0.1]:10027`
when the sender has a rule, and the `relay_split` transport hands it back to a postfix
smtpd inside the container one recipient at a time (relay_split_destination_recipient_limit
= 1; no milters or address mappings again). There each recipient of a recipient rule gets
the sender rule's `FILTER transport:[host]:port` (class relay_sender_route), and a local
recipient is delivered to its mailbox (templates/postfix/sqlite-relay-order.cf,
sqlite-relay-sender-split.cf, sqlite-relay-sender-filter.cf, master.cf).

Credentials never travel in clear: postfix offers no plaintext SASL mechanism outside
TLS (smtp_sasl_security_options noplaintext), and a next hop that has credentials is
always reached with TLS required (sqlite-relay-tls.cf: "encrypt", or "secure" when the
rule asks to verify the host's certificate with `tls_verify`).

Passwords are write-only. They are kept only in the instance secrets directory:
`relay-passwords.json` (by rule) and the postfix map `postfix-sasl_passwd.map`
(bind-mounted into postfix, installed and postmapped by images/postfix/reload). The
map is keyed by the sender subject for sender rules (`smtp_sender_dependent_authentication`)
and by the next hop `[host]:port` for recipient and default rules.
"""

from __future__ import annotations

import ipaddress
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import Reject
from .recipients import GROUP_DOMAIN, MAILBOX_DOMAIN, PUBLIC_DOMAIN
from .secrets import write_secret
from .state import Store

SASL_MAP = "postfix-sasl_passwd.map"
PASSWORDS = "relay-passwords.json"
TYPES = ("sender", "recipient", "wildcard")
RESERVED_DOMAINS = (MAILBOX_DOMAIN, GROUP_DOMAIN, PUBLIC_DOMAIN)


def nexthop(host: str, port: int) -> str:
    """The postfix next hop of a relay host, MX lookups off: [host]:port, [ipv6:addr]:port."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[ipv6:{host.lower()}]:{port}"
    except ValueError:
        pass
    return f"[{host.lower()}]:{port}"


def transport(port: int) -> str:
    """Port 465 speaks TLS from the first byte (smtps); every other port plain SMTP/STARTTLS."""
    return "smtps" if port == 465 else "smtp"


def rule_key(rule: dict[str, Any]) -> str:
    return f"{rule['rule_type']}:{rule['rule_subject']}"


def _row(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "rule_type": row["rule_type"], "rule_subject": row["rule_subject"], "host": row["host"],
        "port": row["port"], "mandatory_tls": bool(row["mandatory_tls"]), "tls_verify": bool(row["tls_verify"]),
        "username": row["username"],
        "has_password": bool(row["has_password"]), "enabled": bool(row["enabled"]),
    }


def _order(rule: dict[str, Any]) -> tuple[int, int, str]:
    """Evaluation order: sender, recipient, default; exact address before domain."""
    return TYPES.index(rule["rule_type"]), 0 if "@" in rule["rule_subject"] else 1, rule["rule_subject"]


def list_rules(store: Store) -> list[dict[str, Any]]:
    rows = store.conn.execute("SELECT * FROM relay_rules").fetchall()
    return sorted((_row(r) for r in rows), key=_order)


def get_rule(store: Store, rule_type: str, subject: str) -> dict[str, Any] | None:
    row = store.conn.execute("SELECT * FROM relay_rules WHERE rule_type=? AND rule_subject=?",
                             (rule_type, subject)).fetchone()
    return _row(row) if row else None


def put_rule(store: Store, rule: dict[str, Any]) -> None:
    store.upsert("relay_rules", {
        "rule_type": rule["rule_type"], "rule_subject": rule["rule_subject"], "host": rule["host"],
        "port": rule["port"], "mandatory_tls": int(rule["mandatory_tls"]),
        "tls_verify": int(bool(rule.get("tls_verify"))), "username": rule["username"],
        "has_password": int(rule["has_password"]), "enabled": int(rule["enabled"]),
        "nexthop": nexthop(rule["host"], rule["port"]), "transport": transport(rule["port"]),
    }, ("rule_type", "rule_subject"))


def delete_rule(store: Store, rule_type: str, subject: str) -> None:
    store.conn.execute("DELETE FROM relay_rules WHERE rule_type=? AND rule_subject=?", (rule_type, subject))


def default_rule(store: Store) -> dict[str, Any] | None:
    """The enabled default rule with its postfix next hop and transport (main.cf), or None."""
    row = store.conn.execute(
        "SELECT * FROM relay_rules WHERE rule_type='wildcard' AND enabled=1").fetchone()
    return {**_row(row), "nexthop": row["nexthop"], "transport": row["transport"]} if row else None


def normalize(data: dict[str, Any], reject: Reject) -> dict[str, Any]:
    """The rule of an add/alter input (lower-case subject and host), semantic checks done."""
    subject = data["rule_subject"].lower()
    if not map_key_safe(subject):
        reject("rule_subject", "rule_subject_invalid", data["rule_subject"],
               "a relay subject cannot start with '#' (a comment in the credentials map)")
    if data["rule_type"] != "wildcard" and subject.rsplit("@", 1)[-1] in RESERVED_DOMAINS:
        reject("rule_subject", "rule_subject_reserved", data["rule_subject"],
               "internal delivery domains cannot be relayed")
    username = data.get("username") or ""
    if ":" in username:
        reject("username", "username_invalid", username, "a relay user name cannot contain ':'")
    password = data.get("password")
    if password and password != password.strip():
        reject("password", "password_invalid", None, "a relay password cannot start or end with a space")
    if password and not username:
        reject("username", "username_required", username, "a password needs a user name")
    return {"rule_type": data["rule_type"], "rule_subject": subject, "host": data["host"].lower(),
            "port": data["port"], "mandatory_tls": data["mandatory_tls"], "tls_verify": data.get("tls_verify"),
            "username": username, "enabled": data["enabled"]}


def not_found(reject: Reject, subject: str) -> None:
    reject("rule_subject", "rule_not_found", subject, "no relay rule has this subject")


# Passwords: the secrets directory only.
class Passwords:
    """The relay passwords of an instance, by rule key; `save` rewrites both secret files."""

    def __init__(self, secrets_dir: Path):
        self.dir = secrets_dir
        path = secrets_dir / PASSWORDS
        self.by_rule: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def save(self, rules: list[dict[str, Any]], undo: list[Callable[[], None]]) -> None:
        """Write the password file and the postfix map of `rules`; register their undo."""
        keys = {rule_key(r) for r in rules if r["has_password"]}
        self.by_rule = {k: v for k, v in self.by_rule.items() if k in keys}
        for name, content in ((PASSWORDS, json.dumps(self.by_rule, sort_keys=True)),
                              (SASL_MAP, sasl_map(rules, self.by_rule))):
            path = self.dir / name
            previous = path.read_text() if path.exists() else None
            if content == previous:
                continue
            undo.append(lambda path=path, previous=previous: _restore(path, previous))
            write_secret(path, content)


def _restore(path: Path, previous: str | None) -> None:
    if previous is None:
        path.unlink(missing_ok=True)
    else:
        write_secret(path, previous)


def map_key_safe(key: str) -> bool:
    """A key postmap reads as one key: no leading '#' (comment), no white space or control
    character (end of key, continuation line)."""
    return bool(key) and not key.startswith("#") and not any(c.isspace() or ord(c) < 32 for c in key)


def sasl_key(rule: dict[str, Any]) -> str:
    """What postfix looks up for a rule's credentials: sender address, @domain, or [host]:port."""
    if rule["rule_type"] == "sender":
        subject = rule["rule_subject"]
        return subject if "@" in subject else f"@{subject}"
    return nexthop(rule["host"], rule["port"])


def sasl_map(rules: list[dict[str, Any]], passwords: dict[str, str]) -> str:
    """The postfix smtp_sasl_password_maps source: `key user:password`, enabled rules only."""
    lines = ["# Rendered by mailctl from the relay rules: edits here are overwritten."]
    seen: set[str] = set()
    for rule in sorted(rules, key=_order):
        password = passwords.get(rule_key(rule))
        key = sasl_key(rule)
        if rule["enabled"] and rule["username"] and password and key not in seen:
            if not map_key_safe(key) or "\n" in rule["username"] + password:
                raise ValueError(f"relay rule {rule_key(rule)} cannot be written to the credentials map")
            seen.add(key)
            lines.append(f"{key} {rule['username']}:{password}")
    return "\n".join(lines) + "\n"


def check_credentials(rules: list[dict[str, Any]], passwords: dict[str, str], changed: dict[str, Any],
                      reject: Reject) -> None:
    """Refuse rule sets where postfix would present a rule's credentials to another rule's host.

    - recipient and default rules share one map key per next hop: two of them with the
      same host and port must have the same credentials;
    - postfix looks up a sender's credentials by address, then @domain: an exact sender
      rule without credentials would borrow those of its domain's sender rule.
    """
    if not changed["enabled"]:
        return

    def credentials(rule: dict[str, Any]) -> tuple[str, str]:
        password = passwords.get(rule_key(rule), "")
        return (rule["username"], password) if rule["username"] and password else ("", "")

    for other in rules:
        if not other["enabled"] or rule_key(other) == rule_key(changed):
            continue
        if (changed["rule_type"] != "sender" and other["rule_type"] != "sender"
                and sasl_key(other) == sasl_key(changed) and credentials(other) != credentials(changed)):
            reject("host", "relay_credentials_conflict", changed["host"],
                   f"the {other['rule_type']} rule {other['rule_subject']} uses this host and port "
                   "with other credentials")
        if changed["rule_type"] == other["rule_type"] == "sender":
            exact, domain = (changed, other) if "@" in changed["rule_subject"] else (other, changed)
            if ("@" in exact["rule_subject"] and "@" not in domain["rule_subject"]
                    and exact["rule_subject"].rsplit("@", 1)[1] == domain["rule_subject"]
                    and credentials(domain) != ("", "") and credentials(exact) == ("", "")
                    and exact["host"] != domain["host"]):
                reject("password", "relay_credentials_required", None,
                       f"the sender rule {exact['rule_subject']} needs its own credentials: postfix would "
                       f"otherwise send those of {domain['rule_subject']} to {exact['host']}")


def save_rule(ctx: Any, rule: dict[str, Any], password: str | None) -> None:
    """Store `rule` (new or changed) and its password (None: keep the stored one).

    The secret files change outside the database: their undo is registered. Postfix is
    reloaded although it reads the rule tables at query time: it installs the credentials
    map at reload, and its queue manager keeps its last address resolution in memory, so
    without a reload the first message resent after a rule change could take the old route.
    """
    passwords = Passwords(ctx.instance.secrets_dir)
    key = rule_key(rule)
    if rule.get("tls_verify") is None:  # omitted (NS8 clients): keep the stored choice, off for a new rule
        stored = get_rule(ctx.store, rule["rule_type"], rule["rule_subject"])
        rule["tls_verify"] = bool(stored and stored["tls_verify"])
    if password:
        passwords.by_rule[key] = password
    elif password is not None or not rule["username"]:
        passwords.by_rule.pop(key, None)
    rule["has_password"] = bool(rule["username"] and passwords.by_rule.get(key))
    others = [r for r in list_rules(ctx.store) if rule_key(r) != key]
    check_credentials(others, passwords.by_rule, rule, ctx.reject)
    put_rule(ctx.store, rule)
    passwords.save(list_rules(ctx.store), ctx.undo)
    ctx.reload.add("postfix")


def remove_rule(ctx: Any, subject: str, rule_type: str | None) -> None:
    """Remove the rule with `subject` (and `rule_type` when a sender and a recipient rule share it)."""
    subject = subject.lower()
    types = ["wildcard"] if subject == "*" else [rule_type] if rule_type else ["sender", "recipient"]
    found = [r for t in types if (r := get_rule(ctx.store, t, subject))]
    if not found:
        not_found(ctx.reject, subject)
    if len(found) > 1:
        ctx.reject("rule_type", "rule_type_required", rule_type,
                   "a sender and a recipient rule have this subject: name the rule type")
    delete_rule(ctx.store, found[0]["rule_type"], subject)
    Passwords(ctx.instance.secrets_dir).save(list_rules(ctx.store), ctx.undo)
    ctx.reload.add("postfix")  # see save_rule
