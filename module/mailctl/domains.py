"""Mail domains: their rows (tables `domains` and `catchall_targets`) and the rules
shared by add-domain and alter-domain.

Postfix reads the domains and their catch-all targets from the state at query time.
Whether a domain signs its mail (the `dkim` column) is read and set here too; the keys
and the DNS record are dkim.py's.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .recipients import recipient_of
from .state import Store


def new_domain(domain: str, **fields: Any) -> dict[str, Any]:
    """A domain row with the defaults of add-domain (as NS8: addusers and addgroups off)."""
    return {"domain": domain, "addusers": False, "addgroups": False, "catchall": None, "bccaddr": None,
            "description": "", **{k: v for k, v in fields.items() if v is not None or k in ("catchall", "bccaddr")}}


def list_domains(store: Store) -> list[dict[str, Any]]:
    rows = store.conn.execute("SELECT * FROM domains ORDER BY domain").fetchall()
    return [_row(r) for r in rows]


def get_domain(store: Store, domain: str) -> dict[str, Any] | None:
    row = store.conn.execute("SELECT * FROM domains WHERE domain=?", (domain,)).fetchone()
    return _row(row) if row else None


def put_domain(store: Store, d: dict[str, Any]) -> None:
    """Add or change a domain (not its DKIM flag) and its catch-all target."""
    store.upsert("domains", {
        "domain": d["domain"], "addusers": d["addusers"], "addgroups": d["addgroups"],
        "catchall": json.dumps(d["catchall"]) if d.get("catchall") else None,
        "bccaddr": d["bccaddr"], "description": d["description"],
    }, ("domain",))
    _put_catchall(store, d["domain"], d.get("catchall"))


def delete_domain(store: Store, domain: str) -> None:
    """Forget the domain and its catch-all (its addresses are addresses.py's to remove)."""
    store.conn.execute("DELETE FROM domains WHERE domain=?", (domain,))
    store.conn.execute("DELETE FROM catchall_targets WHERE domain=?", (domain,))


def _put_catchall(store: Store, domain: str, catchall: dict[str, Any] | None) -> None:
    store.conn.execute("DELETE FROM catchall_targets WHERE domain=?", (domain,))
    if catchall:
        store.conn.execute("INSERT INTO catchall_targets(domain, target) VALUES(?, ?)",
                           (domain, recipient_of(catchall)))


def signing_domains(store: Store) -> list[str]:
    """Domains whose mail submitted on 587/465 is DKIM signed, sorted."""
    rows = store.conn.execute("SELECT domain FROM domains WHERE dkim = 1 ORDER BY domain")
    return [r["domain"] for r in rows]


def set_signing(store: Store, domain: str, enabled: bool) -> None:
    store.conn.execute("UPDATE domains SET dkim = ? WHERE domain = ?", (int(enabled), domain))


def _row(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "domain": row["domain"],
        "addusers": bool(row["addusers"]),
        "addgroups": bool(row["addgroups"]),
        "catchall": json.loads(row["catchall"]) if row["catchall"] else None,
        "bccaddr": row["bccaddr"],
        "description": row["description"],
    }


def check_domain_fields(ctx, domain: dict[str, Any]) -> None:
    """A catch-all is a mailbox, not an external address. It is accepted with addusers on
    too, as NS8 does (its scenario 00__catchall sets one on such a domain; the product's
    page offers it only with addusers off): users keep their mail, unknown names go to it."""
    dest = domain.get("catchall")
    if dest and dest["dtype"] == "external":
        ctx.reject("catchall.dtype", "catchall_external_not_allowed", dest["dtype"],
                   "a catch-all must be a user, group or public mailbox")


def normalize_catchall(ctx, domain: dict[str, Any]) -> dict[str, Any]:
    """The domain with its catch-all checked (it must exist) and in stored form {dtype, name}."""
    from .addresses import normalize_destinations  # addresses imports this module

    if not domain.get("catchall"):
        return domain
    return {**domain, "catchall": normalize_destinations(ctx, [domain["catchall"]], field="catchall")[0]}


def listed_domains(ctx, domains: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Domains as list-domains (and alter-domain) show them: NS8's fields, the catch-all as
    a listed destination (ui_name, or apo when gone), plus the extension `dkim`."""
    from .addresses import listed_destination  # addresses and dkim import this module
    from .directory import open_directory
    from .dkim import SELECTOR

    signing = set(signing_domains(ctx.store))
    users, groups = {}, {}
    if any(d["catchall"] and d["catchall"]["dtype"] in ("user", "group") for d in domains):
        directory = open_directory(ctx.instance, ctx.store)
        users = {u["user"]: u for u in directory.users()}
        groups = {g["group"]: g for g in directory.groups()}
    return [{**d, "catchall": d["catchall"] and listed_destination(d["catchall"], users, groups),
             "dkim": {"enabled": d["domain"] in signing, "selector": SELECTOR}}
            for d in domains]
