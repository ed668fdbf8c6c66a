"""The instance state: one SQLite database, the single source of truth.

One rule for reaching it: `Store` owns the connection, the transaction, the schema
(MIGRATIONS) and the settings table; each feature module owns its tables and the SQL
on them (domains.py: domains and catchall_targets; addresses.py: addresses and
address_targets; mailboxes.py: mailboxes and forward_targets; relayrules.py,
publicmailboxes.py, filter.py: their own table), run on `store.conn`. A module that
needs another one's rows calls that module, never its tables.

Daemon configuration is derived from it. Postfix and dovecot also read it directly,
through SQL views made for them (the last migration: postfix_*, dovecot_*), so it holds
no secrets (those live in the secrets directory, mode 0600) and is readable by the
daemons' users.

The database uses the rollback journal (not WAL): postfix opens it read-only
through a read-only mount and must never need to write a -shm file.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    # Mail flow: addresses and their expanded targets (read by postfix at query time),
    # per-user mailbox settings and forwards.
    """
    CREATE TABLE addresses (
        local        TEXT NOT NULL,
        domain       TEXT NOT NULL,         -- '*' for a wildcard address
        destinations TEXT NOT NULL,         -- JSON list of destinations
        internal     INTEGER NOT NULL DEFAULT 0,
        description  TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (local, domain)
    );
    CREATE TABLE address_targets (
        local  TEXT NOT NULL,
        domain TEXT NOT NULL,
        target TEXT NOT NULL                -- a postfix recipient address
    );
    CREATE INDEX address_targets_key ON address_targets(local, domain);
    CREATE TABLE mailboxes (
        user           TEXT PRIMARY KEY,    -- lower-case user name
        enabled        INTEGER NOT NULL DEFAULT 1,
        quota_custom   INTEGER NOT NULL DEFAULT 0,
        quota_limit    INTEGER NOT NULL DEFAULT 0,   -- MiB, 0 = unlimited
        spam_custom    INTEGER NOT NULL DEFAULT 0,
        spam_retention INTEGER NOT NULL DEFAULT 0,   -- days, 0 = keep
        forward        TEXT,                -- JSON list of destinations or NULL
        keepcopy       INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE forward_targets (
        user   TEXT NOT NULL,
        target TEXT NOT NULL
    );
    CREATE INDEX forward_targets_user ON forward_targets(user);
    CREATE TABLE catchall_targets (
        domain TEXT NOT NULL,
        target TEXT NOT NULL
    );
    -- postmaster exists in every domain and cannot be removed (only redirected).
    INSERT INTO addresses(local, domain, destinations, description)
        VALUES('postmaster', '*', '[{"dtype": "user", "name": "administrator"}]', 'Postmaster of every domain');
    INSERT INTO address_targets(local, domain, target)
        VALUES('postmaster', '*', 'administrator@mailbox.internal');
    """,
    # Filter: DKIM signing per domain (module/mailctl/dkim.py) and the rules that let
    # messages skip the filter (module/mailctl/filter.py).
    """
    ALTER TABLE domains ADD COLUMN dkim INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE bypass_rules (
        type      TEXT NOT NULL,            -- ip, cidr, email, domain
        direction TEXT NOT NULL,            -- from (sender or client IP), to (recipient)
        value     TEXT NOT NULL,
        PRIMARY KEY (type, direction, value)
    );
    """,
    # Relay rules (module/mailctl/relayrules.py), read by postfix at query time. Their
    # passwords are not here: they live in the secrets directory only.
    """
    CREATE TABLE relay_rules (
        rule_type     TEXT NOT NULL,            -- sender, recipient, wildcard
        rule_subject  TEXT NOT NULL,            -- lower-case address, domain, or '*'
        host          TEXT NOT NULL,
        port          INTEGER NOT NULL,
        mandatory_tls INTEGER NOT NULL DEFAULT 0,
        username      TEXT NOT NULL DEFAULT '',
        has_password  INTEGER NOT NULL DEFAULT 0,
        enabled       INTEGER NOT NULL DEFAULT 1,
        nexthop       TEXT NOT NULL,            -- postfix next hop: [host]:port
        transport     TEXT NOT NULL,            -- smtp, or smtps (TLS from the first byte)
        PRIMARY KEY (rule_type, rule_subject)
    );
    """,
    # Public mailboxes (module/mailctl/publicmailboxes.py): postfix routes X@public.internal
    # to the ones listed here. Their rights live in dovecot's ACL files (IMAP clients may
    # change them, RFC 4314); `acls` keeps what the last action set, to restore them.
    """
    CREATE TABLE public_mailboxes (
        mailbox TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
        acls    TEXT NOT NULL DEFAULT '[]'      -- JSON list of ACL entries (action input form)
    );
    """,
    # The state/daemon contract: the daemons read the state only through these views,
    # named for their reader (postfix_* by the sqlite: maps of templates/postfix,
    # dovecot_* by the SQL passdb/userdb of templates/dovecot and images/dovecot/spam-retention).
    # A migration that changes a table keeps these views answering the same columns.
    # tests/unit/test_state_contract.py runs every rendered query against them.
    """
    CREATE VIEW postfix_domains AS
        SELECT domain, addusers, addgroups, bccaddr FROM domains;
    -- Each explicit address in each domain it is valid in, with its targets: a domain
    -- address wins over a wildcard address with the same local part.
    CREATE VIEW postfix_addresses AS
        SELECT local, domain, target FROM address_targets WHERE domain != '*'
        UNION ALL
        SELECT w.local, d.domain, w.target FROM address_targets w JOIN domains d
            WHERE w.domain = '*' AND NOT EXISTS (
                SELECT 1 FROM address_targets x WHERE x.local = w.local AND x.domain = d.domain);
    -- The addresses refused from outside, by the same precedence: a domain address, else a
    -- wildcard address, else the automatic address of a user or group marked internal.
    CREATE VIEW postfix_internal_addresses AS
        SELECT a.local, a.domain FROM addresses a JOIN domains d ON d.domain = a.domain WHERE a.internal = 1
        UNION ALL
        SELECT w.local, d.domain FROM addresses w JOIN domains d
            WHERE w.domain = '*' AND w.internal = 1 AND NOT EXISTS (
                SELECT 1 FROM addresses x WHERE x.local = w.local AND x.domain = d.domain)
        UNION ALL
        SELECT j.value, d.domain FROM settings s, json_each(s.value, '$.adduser') j JOIN domains d
            WHERE s.key = 'internal_auto_addresses' AND d.addusers = 1 AND NOT EXISTS (
                SELECT 1 FROM addresses x WHERE x.local = j.value AND x.domain IN (d.domain, '*'))
        UNION ALL
        SELECT j.value, d.domain FROM settings s, json_each(s.value, '$.addgroup') j JOIN domains d
            WHERE s.key = 'internal_auto_addresses' AND d.addgroups = 1 AND NOT EXISTS (
                SELECT 1 FROM addresses x WHERE x.local = j.value AND x.domain IN (d.domain, '*'));
    CREATE VIEW postfix_catchall AS
        SELECT domain, target FROM catchall_targets;
    CREATE VIEW postfix_forwards AS
        SELECT user, target FROM forward_targets;
    CREATE VIEW postfix_disabled_mailboxes AS
        SELECT user FROM mailboxes WHERE enabled = 0;
    CREATE VIEW postfix_public_mailboxes AS
        SELECT mailbox FROM public_mailboxes;
    CREATE VIEW postfix_relay_rules AS
        SELECT rule_type, rule_subject, nexthop, transport, mandatory_tls FROM relay_rules WHERE enabled = 1;
    CREATE VIEW dovecot_mailboxes AS
        SELECT user, enabled, quota_custom, quota_limit FROM mailboxes;
    CREATE VIEW dovecot_spam_retention AS
        SELECT user, spam_retention AS days FROM mailboxes WHERE spam_custom = 1;
    """,
    # As in NS8: the built-in public mailbox "postmaster" (no ACL entries) receives the
    # postmaster address, unless that address was already given other destinations.
    """
    INSERT OR IGNORE INTO public_mailboxes(mailbox, acls) VALUES('postmaster', '[]');
    UPDATE addresses SET destinations = '[{"dtype": "public", "name": "postmaster"}]',
        description = 'RFC-mandatory postmaster alias'
        WHERE local = 'postmaster' AND domain = '*'
        AND destinations = '[{"dtype": "user", "name": "administrator"}]';
    UPDATE address_targets SET target = 'postmaster@public.internal'
        WHERE local = 'postmaster' AND domain = '*' AND target = 'administrator@mailbox.internal'
    """,
    # Relay rules may ask postfix to verify the relay host's certificate (relayrules.py);
    # the relay TLS policy also reads which rules send credentials (never in clear).
    """
    ALTER TABLE relay_rules ADD COLUMN tls_verify INTEGER NOT NULL DEFAULT 0;
    DROP VIEW postfix_relay_rules;
    CREATE VIEW postfix_relay_rules AS
        SELECT rule_type, rule_subject, nexthop, transport, mandatory_tls, tls_verify, has_password
        FROM relay_rules WHERE enabled = 1;
    """,
    # remove-domain deletes a domain's addresses: by index, not a scan of every address.
    """
    CREATE INDEX addresses_domain ON addresses(domain);
    CREATE INDEX address_targets_domain ON address_targets(domain);
    """,
    # Postfix asks dovecot's quota-status only for mailboxes with a quota (sqlite-quota-skip.cf).
    """
    CREATE VIEW postfix_mailbox_quotas AS
        SELECT user, quota_custom, quota_limit FROM mailboxes;
    """,
]

DEFAULT_SETTINGS: dict[str, Any] = {
    "hostname": "",
    "mail_domain": "",
    "user_domain": "local",
    "configured": False,
    "queue": {"maximal_queue_lifetime": 120},
    "external_user_domains": [],
    "mailbox_settings": {
        "quota": {"limit": 0},                       # MiB for every mailbox, 0 = no quota
        "sharedseen": {"enabled": True},
        "spam_folder": {"enabled": True, "name": "Junk"},
        "spam_prefix": {"enabled": False, "prefix": "***SPAM***"},
        "spam_retention": {"value": 15},             # days spam stays in Junk, 0 = forever
    },
    "master_users": [],
    "relay": {"networks": [], "postfix_restricted_sender": False},
    "always_bcc": "",                                # postfix always_bcc, "" = off
    "antispam": {
        "enabled": True,
        "spam_flag_threshold": 6,                    # score: "add header" (X-Spam: Yes)
        "deny_message_threshold": 15,                # score: rejected at DATA
        "greylist": {"enabled": False, "threshold": 4, "delay": 300},  # delay: s before a retry passes
        "rbl": {"enabled": True, "lists": []},       # [] = rspamd's own DNS blocklists
        # Bayes (filter.py): scores only after min_learns spam and ham learns each;
        # autolearn off as in NS8 (rspamd's default).
        "bayes": {"min_learns": 20, "autolearn": False},
        "dns_resolver": "",                          # "" = the host's; else "IP" or "IP:port"
        # Rspamd ratelimit per login on 587/465: a burst, then a rate; beyond it 4xx (deferred)
        "sender_rate_limit": {"enabled": True, "burst": 200, "messages_per_hour": 200},
    },
    "antivirus": {"enabled": True, "clamav_official_sigs": False, "third_party_sigs_rating": "medium",
                  "mirror_url": "",                  # "" = the providers' own mirrors
                  "infected_mail": "reject"},        # reject at SMTP time, or discard
}


class Store:
    """The state database: connection, migrations, settings. Use `transaction()` for every change."""

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
        if self.conn.execute("PRAGMA user_version").fetchone()[0] >= len(MIGRATIONS):
            return
        # The version is read again under the write lock: two processes opening a new
        # database at once (the web server and an action) must not both apply a migration.
        with self.transaction():
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
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

    def upsert(self, table: str, row: dict[str, Any], key: tuple[str, ...]) -> None:
        """Insert `row` (column -> value) into `table`, or update the row with the same `key` columns.

        Table and column names come from the feature modules' code, never from input.
        """
        columns = ", ".join(row)
        values = ", ".join(f":{c}" for c in row)
        updates = ", ".join(f"{c}=excluded.{c}" for c in row if c not in key)
        self.conn.execute(f"INSERT INTO {table}({columns}) VALUES({values}) "
                          f"ON CONFLICT({', '.join(key)}) DO UPDATE SET {updates}", row)

    # Settings: JSON values under string keys, with defaults.
    def get(self, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        if row is None:
            return json.loads(json.dumps(DEFAULT_SETTINGS.get(key)))
        return json.loads(row["value"])

    def set(self, key: str, value: Any) -> None:
        self.upsert("settings", {"key": key, "value": json.dumps(value, sort_keys=True)}, ("key",))

    def settings(self) -> dict[str, Any]:
        values = {k: self.get(k) for k in DEFAULT_SETTINGS}
        for row in self.conn.execute("SELECT key, value FROM settings"):
            values[row["key"]] = json.loads(row["value"])
        return values

    def dump(self) -> str:
        """Every row of every table as text: used to prove an action changed nothing."""
        return "\n".join(self.conn.iterdump())

