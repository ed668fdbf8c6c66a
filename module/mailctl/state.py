"""The instance state: one SQLite database, the single source of truth.

Daemon configuration is derived from it. Postfix also reads it directly through
`sqlite:` lookup tables, so it holds no secrets (those live in the secrets
directory, mode 0600) and is readable by the daemons' users.

The database uses the rollback journal (not WAL): postfix opens it read-only
through a read-only mount and must never need to write a -shm file.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

# Each entry upgrades the schema by one version (PRAGMA user_version).
MIGRATIONS: list[str] = [
    """
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL             -- JSON
    );
    CREATE TABLE domains (
        domain      TEXT PRIMARY KEY,
        addusers    INTEGER NOT NULL DEFAULT 1,
        addgroups   INTEGER NOT NULL DEFAULT 1,
        catchall    TEXT,               -- JSON destination or NULL
        bccaddr     TEXT,
        description TEXT NOT NULL DEFAULT ''
    );
    """,
]

DEFAULT_SETTINGS: dict[str, Any] = {
    "hostname": "",
    "mail_domain": "",
    "user_domain": "local",
    "configured": False,
    "queue": {"maximal_queue_lifetime": 120},
    "external_user_domains": [],
}


class Store:
    """Typed access to the state database. Use `transaction()` for every change."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o755)
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=DELETE")
        self.conn.execute("PRAGMA foreign_keys=ON")
        os.chmod(path, 0o644)
        self._migrate()

    def close(self) -> None:
        self.conn.close()

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                for statement in filter(str.strip, script.split(";")):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version={number}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        if self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # Settings: JSON values under string keys, with defaults.
    def get(self, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        if row is None:
            return json.loads(json.dumps(DEFAULT_SETTINGS.get(key)))
        return json.loads(row["value"])

    def set(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO settings(key, value) VALUES(?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, json.dumps(value, sort_keys=True)),
        )

    def settings(self) -> dict[str, Any]:
        values = {k: self.get(k) for k in DEFAULT_SETTINGS}
        for row in self.conn.execute("SELECT key, value FROM settings"):
            values[row["key"]] = json.loads(row["value"])
        return values

    # Domains
    def list_domains(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM domains ORDER BY domain").fetchall()
        return [_domain_row(r) for r in rows]

    def get_domain(self, domain: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM domains WHERE domain=?", (domain,)).fetchone()
        return _domain_row(row) if row else None

    def put_domain(self, d: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT INTO domains(domain, addusers, addgroups, catchall, bccaddr, description) "
            "VALUES(:domain, :addusers, :addgroups, :catchall, :bccaddr, :description) "
            "ON CONFLICT(domain) DO UPDATE SET addusers=excluded.addusers, addgroups=excluded.addgroups, "
            "catchall=excluded.catchall, bccaddr=excluded.bccaddr, description=excluded.description",
            {**d, "catchall": json.dumps(d["catchall"]) if d.get("catchall") else None},
        )

    def delete_domain(self, domain: str) -> None:
        self.conn.execute("DELETE FROM domains WHERE domain=?", (domain,))

    def dump(self) -> str:
        """Every row of every table as text: used to prove an action changed nothing."""
        return "\n".join(self.conn.iterdump())


def _domain_row(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "domain": row["domain"],
        "addusers": bool(row["addusers"]),
        "addgroups": bool(row["addgroups"]),
        "catchall": json.loads(row["catchall"]) if row["catchall"] else None,
        "bccaddr": row["bccaddr"],
        "description": row["description"],
    }


def new_domain(domain: str, **fields: Any) -> dict[str, Any]:
    """A domain row with the defaults of add-domain (addusers and addgroups on)."""
    return {"domain": domain, "addusers": True, "addgroups": True, "catchall": None, "bccaddr": None,
            "description": "", **{k: v for k, v in fields.items() if v is not None or k in ("catchall", "bccaddr")}}
