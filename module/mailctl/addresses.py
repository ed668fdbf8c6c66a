"""Mail addresses and their destinations: the tables `addresses` and `address_targets`,
and the rules shared by the address actions.

An address row has `domain` '*' when it is a wildcard (valid in every mail domain);
postfix reads its destinations from address_targets (recipients.recipient_of) at query time.
Users and groups also have automatic addresses (`adduser`/`addgroup`) in the domains
with addusers/addgroups on; those are not rows: only their `internal` flag is stored,
in the setting INTERNAL_AUTO (postfix reads it from there at RCPT time).
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

from . import domains, mailboxes, publicmailboxes
from .directory import Directory, open_directory
from .recipients import destination_name, recipient_of
from .state import Store

WILDCARD = "*"
POSTMASTER = "postmaster"
# Setting: {"adduser": [user names], "addgroup": [group names]} whose automatic
# addresses refuse mail from outside.
INTERNAL_AUTO = "internal_auto_addresses"

_EMAIL = re.compile(r"^[^@\s]+@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]*$")


def address_key(ctx, data: dict[str, Any], must_exist_domain: bool = True) -> tuple[str, str]:
    """(local, domain) of the input; domain is '*' for a wildcard. Rejects an unknown domain."""
    local = data["local"].lower()
    if data["atype"] != "domain":
        return local, WILDCARD
    domain = data["domain"].lower()
    if must_exist_domain and domains.get_domain(ctx.store, domain) is None:
        ctx.reject("domain", "mail_domain_not_found", data["domain"], f"{domain} is not a mail domain")
    return local, domain


# Rows ----------------------------------------------------------------------------------

def stored_addresses(store: Store) -> list[dict[str, Any]]:
    """Every explicit address (postmaster included), by local part and domain."""
    rows = store.conn.execute("SELECT * FROM addresses ORDER BY local, domain").fetchall()
    return [_row(r) for r in rows]


def get_address(store: Store, local: str, domain: str) -> dict[str, Any] | None:
    row = store.conn.execute("SELECT * FROM addresses WHERE local=? AND domain=?", (local, domain)).fetchone()
    return _row(row) if row else None


def put_address(store: Store, local: str, domain: str, destinations: list[dict[str, Any]],
                internal: bool = False, description: str = "") -> None:
    """Add or change an address and the postfix targets of its destinations."""
    store.upsert("addresses", {
        "local": local, "domain": domain, "destinations": json.dumps(destinations, sort_keys=True),
        "internal": int(internal), "description": description,
    }, ("local", "domain"))
    store.conn.execute("DELETE FROM address_targets WHERE local=? AND domain=?", (local, domain))
    store.conn.executemany(
        "INSERT INTO address_targets(local, domain, target) VALUES(?, ?, ?)",
        [(local, domain, recipient_of(d)) for d in destinations],
    )


def delete_address(store: Store, local: str, domain: str) -> None:
    store.conn.execute("DELETE FROM addresses WHERE local=? AND domain=?", (local, domain))
    store.conn.execute("DELETE FROM address_targets WHERE local=? AND domain=?", (local, domain))


def delete_domain_addresses(store: Store, domain: str) -> None:
    """The addresses of a removed domain go with it (mail already delivered stays in the mailboxes)."""
    store.conn.execute("DELETE FROM addresses WHERE domain=?", (domain,))
    store.conn.execute("DELETE FROM address_targets WHERE domain=?", (domain,))


def drop_destination(store: Store, gone: dict[str, Any]) -> None:
    """Remove the destination `gone` from every address, catch-all and forward.

    An address left without any destination is removed; a forward left empty is off.
    """
    for a in stored_addresses(store):
        if gone not in a["destinations"]:
            continue
        local, domain = a["local"], a["domain"] or WILDCARD
        rest = [d for d in a["destinations"] if d != gone]
        if rest:
            put_address(store, local, domain, rest, a["internal"], a["description"])
        else:
            delete_address(store, local, domain)
    for d in domains.list_domains(store):
        if d["catchall"] == gone:
            domains.put_domain(store, {**d, "catchall": None})
    for m in mailboxes.list_mailboxes(store):
        if m["forward"] and gone in m["forward"]:
            rest = [d for d in m["forward"] if d != gone]
            mailboxes.put_mailbox(store, {**m, "forward": rest or None, "keepcopy": m["keepcopy"] if rest else False})


def _row(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "local": row["local"],
        "atype": "wildcard" if row["domain"] == "*" else "domain",
        "domain": None if row["domain"] == "*" else row["domain"],
        "destinations": json.loads(row["destinations"]),
        "internal": bool(row["internal"]),
        "description": row["description"],
    }


# Input checks and listings ---------------------------------------------------------------

def normalize_destinations(ctx, destinations: list[dict[str, Any]], field: str = "destinations",
                           directory: Directory | None = None) -> list[dict[str, Any]]:
    """Check that every destination exists; return them without display-only keys.

    Users and groups must exist in the selected user domain, public mailboxes among the
    public mailboxes, and an external destination must be an email address.
    """
    if directory is None and any(d["dtype"] in ("user", "group") for d in destinations):
        directory = open_directory(ctx.instance, ctx.store)
    publics = publicmailboxes.names(ctx.store)
    result: list[dict[str, Any]] = []
    for dest in destinations:
        dtype, name = dest["dtype"], destination_name(dest)
        if dtype in ("user", "group"):
            given, name = name, name.lower()
            # One search per named user or group: listing a large domain costs seconds.
            found = directory.user(name) if dtype == "user" else directory.group(name)
            if found is None:
                ctx.reject(field, "address_destination_not_found", given,
                           f"{dtype} {given} does not exist in the user domain")
        elif dtype == "public":
            name = next((p for p in publics if p.lower() == name.lower()), name)
            if name not in publics:
                ctx.reject(field, "address_destination_not_found", name, f"public mailbox {name} does not exist")
        elif not _EMAIL.match(name):
            ctx.reject(field, "address_destination_invalid", name, "an external destination must be an email address")
        clean = {"dtype": dtype, "name": name}
        if clean not in result:
            result.append(clean)
    return result


def internal_auto(store: Store) -> dict[str, list[str]]:
    value = store.get(INTERNAL_AUTO) or {}
    return {"adduser": list(value.get("adduser", [])), "addgroup": list(value.get("addgroup", []))}


def set_internal_auto(store: Store, atype: str, name: str, internal: bool) -> None:
    """Mark the automatic address of a user or group as internal (or not)."""
    value = internal_auto(store)
    names = set(value[atype]) - {name}
    value[atype] = sorted(names | ({name} if internal else set()))
    store.set(INTERNAL_AUTO, value)


def listed_destination(dest: dict[str, Any], users: dict[str, dict], groups: dict[str, dict]) -> dict[str, Any]:
    """A stored destination for output: users and groups gone from LDAP become `apo`."""
    if dest["dtype"] == "user":
        user = users.get(dest["name"].lower())
        if user is None:
            return {"dtype": "apo", "name": dest["name"]}
        return {"dtype": "user", "name": user["user"], "ui_name": user["display_name"]}
    if dest["dtype"] == "group":
        group = groups.get(dest["name"].lower())
        if group is None:
            return {"dtype": "apo", "name": dest["name"]}
        return {"dtype": "group", "name": group["group"], "ui_name": group["description"]}
    return {"dtype": dest["dtype"], "name": dest["name"]}


def list_addresses(store: Store, directory: Directory) -> dict[str, Any]:
    """The list-addresses output, record for record as NS8 writes it.

    Explicit addresses: local, atype, destinations, domain (atype domain only), and
    `internal` / `description` only when set; postmaster@* has delete_forbidden. Automatic
    addresses (while a domain has addusers / addgroups on): atype, local, description (the
    display name or group description), and `internal` only when set.
    """
    users = {u["user"]: u for u in directory.users()}
    groups = {g["group"]: g for g in directory.groups()}
    mail_domains = domains.list_domains(store)
    internal = internal_auto(store)
    # Many addresses share the same destinations (100,000 addresses, 10,000 users): each
    # distinct stored JSON is parsed and resolved once; equal lists are one shared object.
    listed: dict[str, list[dict[str, Any]]] = {}
    addresses = []
    rows = store.conn.execute(
        "SELECT local, domain, destinations, internal, description FROM addresses ORDER BY local, domain")
    for local, domain, stored, is_internal, description in rows:
        destinations = listed.get(stored)
        if destinations is None:
            destinations = [listed_destination(d, users, groups) for d in json.loads(stored)]
            listed[stored] = destinations
        item: dict[str, Any] = {"local": local, "atype": "wildcard" if domain == WILDCARD else "domain",
                                "destinations": destinations}
        if domain != WILDCARD:
            item["domain"] = domain
        if is_internal:
            item["internal"] = True
        if description:
            item["description"] = description
        if local == POSTMASTER and domain == WILDCARD:
            item["delete_forbidden"] = True
        addresses.append(item)
    adduser_domains = [d["domain"] for d in mail_domains if d["addusers"]]
    addgroup_domains = [d["domain"] for d in mail_domains if d["addgroups"]]
    automatic = []
    if adduser_domains:
        automatic += [("adduser", name, u["display_name"]) for name, u in users.items()]
    if addgroup_domains:
        automatic += [("addgroup", name, g["description"]) for name, g in groups.items()]
    for atype, name, description in automatic:
        item = {"atype": atype, "local": name, "description": description}
        if name in internal[atype]:
            item["internal"] = True
        addresses.append(item)
    return {"adduser_domains": adduser_domains, "addgroup_domains": addgroup_domains, "addresses": addresses}


def list_destinations(store: Store, directory: Directory) -> list[dict[str, Any]]:
    """Everything an address can point at, as NS8 lists it: users with an enabled mailbox
    and groups (lower-case name, ui_name), public mailboxes (name only), sorted by ui_name
    (else name)."""
    disabled = disabled_users(store)
    result = [{"dtype": "user", "name": u["user"].lower(), "ui_name": u["display_name"]}
              for u in directory.users() if u["user"] not in disabled]
    result += [{"dtype": "group", "name": g["group"].lower(), "ui_name": g["description"]}
               for g in directory.groups()]
    result += [{"dtype": "public", "name": p} for p in sorted(publicmailboxes.names(store))]
    return sorted(result, key=lambda d: (d.get("ui_name") or d["name"]).lower())


def disabled_users(store: Store) -> set[str]:
    """Users whose mailbox is disabled: NS8 leaves them out of the destination pickers."""
    return {m["user"] for m in mailboxes.list_mailboxes(store) if not m["enabled"]}
