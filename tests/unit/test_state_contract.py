"""The state/daemon contract: every query a daemon runs on the state, rendered and run
against a fresh, filled state database.

Postfix (`sqlite:` maps), dovecot (SQL passdb/userdb) and the spam-retention job read
the state directly; these tests check, without containers, that each query parses,
reads only the views made for its reader (postfix_*, dovecot_*), and answers what the
daemon expects for representative keys.
"""

from __future__ import annotations

import re
import sqlite3

import pytest

from mailctl import publicmailboxes, relayrules
from mailctl.addresses import put_address, set_internal_auto
from mailctl.context import render_context
from mailctl.domains import new_domain, put_domain
from mailctl.mailboxes import put_mailbox
from mailctl.render import ConfigTree
from mailctl.settings import PROJECT_ROOT
from mailctl.state import Store

STATE_PATH = "/state/state.sqlite"  # where the daemons mount the state database
SPAM_RETENTION = PROJECT_ROOT / "images" / "dovecot" / "spam-retention"


def fill(s: Store) -> None:
    """A state with one of each thing the daemons look up."""
    with s.transaction():
        put_domain(s, new_domain("example.org", addusers=True, addgroups=True, bccaddr="archive@example.net"))
        put_domain(s, new_domain("example.com", addusers=False, addgroups=False,
                                 catchall={"dtype": "user", "name": "box"}))
        put_address(s, "info", "*", [{"dtype": "user", "name": "john"}])
        put_address(s, "info", "example.com", [{"dtype": "external", "name": "far@example.net"}], internal=True)
        put_address(s, "sales", "*", [{"dtype": "group", "name": "sales"}], internal=True)
        put_address(s, "shared", "*", [{"dtype": "public", "name": "Shared"}])
        publicmailboxes.put(s, "Shared", [])
        set_internal_auto(s, "adduser", "ann", True)
        put_mailbox(s, {"user": "off", "enabled": False})
        put_mailbox(s, {"user": "big", "quota_custom": True, "quota_limit": 500,
                        "spam_custom": True, "spam_retention": 3})
        put_mailbox(s, {"user": "john", "forward": [{"dtype": "external", "name": "x@example.net"}],
                        "keepcopy": True})
        relayrules.put_rule(s, {"rule_type": "sender", "rule_subject": "example.org", "host": "smart.example.net",
                                "port": 465, "mandatory_tls": True, "username": "", "has_password": False,
                                "enabled": True})
        relayrules.put_rule(s, {"rule_type": "recipient", "rule_subject": "example.net", "host": "relay.example.net",
                                "port": 587, "mandatory_tls": False, "username": "", "has_password": False,
                                "enabled": True})
        relayrules.put_rule(s, {"rule_type": "recipient", "rule_subject": "off.example", "host": "x.example.net",
                                "port": 25, "mandatory_tls": True, "username": "", "has_password": False,
                                "enabled": False})


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> tuple[Store, dict[str, list[str]]]:
    """The filled state and every daemon query: {"postfix/<map>": [query], "dovecot/<file>": [...]}."""
    root = tmp_path_factory.mktemp("contract")
    s = Store(root / "state.sqlite")
    fill(s)
    staged = ConfigTree(root / "config").stage(render_context(s))
    queries: dict[str, list[str]] = {}
    for path in sorted(staged.rglob("*")):
        if path.is_file() and STATE_PATH in path.read_text():
            queries[f"{path.parent.name}/{path.name}"] = _config_queries(path.read_text())
    queries["dovecot/spam-retention"] = re.findall(r'"(SELECT [^"]*)"', SPAM_RETENTION.read_text())
    return s, queries


def _config_queries(text: str) -> list[str]:
    """The `query`/`*_query` values of a postfix or dovecot file (continuation lines joined)."""
    joined = re.sub(r"\n[ \t]+", " ", text)
    return re.findall(r"^\w*query\s*=\s*(.+)$", joined, flags=re.MULTILINE)


def postfix_sql(query: str, key: str) -> str | None:
    """The SQL postfix runs for `key` (sqlite_table(5) expansions); None when it skips the query."""
    local, at, domain = key.rpartition("@")
    if not at:
        local, domain = key, ""
    values = {"s": key, "u": local, "d": domain}
    if ("%d" in query and not domain) or ("%u" in query and not local):
        return None
    return re.sub(r"%([sud])", lambda m: values[m.group(1)].replace("'", "''"), query)


def lookup(s: Store, queries: dict[str, list[str]], name: str, key: str) -> list[str]:
    """What postfix gets from map `name` for `key`: the first column of every row."""
    (query,) = queries[f"postfix/{name}"]
    sql = postfix_sql(query, key)
    return [] if sql is None else [str(r[0]) for r in s.conn.execute(sql)]


def dovecot_sql(query: str, user: str) -> str:
    return query.replace("%Ln", user.split("@")[0].lower()).replace("%u", user)


def test_every_file_that_reads_the_state_has_its_queries_here(state):
    _, queries = state
    assert all(queries.values()), [name for name, q in queries.items() if not q]
    names = set(queries)
    assert {"postfix/sqlite-addresses.cf", "postfix/sqlite-internal.cf", "dovecot/sql-userdb.conf.ext",
            "dovecot/sql-deny.conf.ext", "dovecot/spam-retention"} <= names
    assert len([n for n in names if n.startswith("postfix/sqlite-")]) == len(
        list((PROJECT_ROOT / "imageroot/templates/postfix").glob("sqlite-*.cf.j2")))


def test_daemons_read_only_the_views_named_for_them(state):
    """A query names only views of its reader; their tables are read through them (sqlite's authorizer)."""
    s, queries = state
    views = {r[0] for r in s.conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
    for name, group in queries.items():
        reader = name.split("/")[0]
        for query in group:
            sql = postfix_sql(query, "info@example.org") if reader == "postfix" else dovecot_sql(query, "john")
            named: set[str] = set()  # what the query itself reads (sqlite reports views' tables with the view)

            def check(action, table, column, database, view, named=named):
                if action == sqlite3.SQLITE_READ and table and view is None:
                    named.add(table)
                return sqlite3.SQLITE_OK

            s.conn.set_authorizer(check)
            try:
                s.conn.execute(sql).fetchall()
            finally:
                s.conn.set_authorizer(None)
            assert named, f"{name} reads nothing: {sql}"
            assert named <= views and all(v.startswith(f"{reader}_") for v in named), f"{name} reads {named}"


def test_postfix_addresses_domain_before_wildcard(state):
    s, q = state
    assert lookup(s, q, "sqlite-addresses.cf", "info@example.org") == ["john@mailbox.internal"]
    assert lookup(s, q, "sqlite-addresses.cf", "info@example.com") == ["far@example.net"]
    assert lookup(s, q, "sqlite-addresses.cf", "info@unknown.example") == []
    assert lookup(s, q, "sqlite-addresses.cf", "postmaster@example.com") == ["postmaster@public.internal"]
    assert lookup(s, q, "sqlite-sender-login.cf", "info@example.org") == ["john"]
    assert lookup(s, q, "sqlite-sender-login.cf", "info@example.com") == ["-"]
    assert lookup(s, q, "sqlite-sender-policy.cf", "sales@example.org") == ["OK"]
    assert lookup(s, q, "sqlite-sender-policy.cf", "info@example.org") == ["reject_sender_login_mismatch"]
    assert lookup(s, q, "sqlite-sender-policy.cf", "nobody@example.org") == []


def test_postfix_domains_catchall_bcc_forwards_public(state):
    s, q = state
    assert lookup(s, q, "sqlite-domains.cf", "example.org") == ["example.org"]
    assert lookup(s, q, "sqlite-domains.cf", "example.net") == []
    assert lookup(s, q, "sqlite-addusers-domains.cf", "example.com") == []
    assert lookup(s, q, "sqlite-addgroups-domains.cf", "example.org") == ["example.org"]
    assert lookup(s, q, "sqlite-bcc.cf", "@example.org") == ["archive@example.net"]
    assert lookup(s, q, "sqlite-bcc.cf", "@example.com") == []
    assert lookup(s, q, "sqlite-catchall.cf", "@example.com") == ["box@mailbox.internal"]
    assert sorted(lookup(s, q, "sqlite-forwards.cf", "john@mailbox.internal")) == [
        "john@mailbox.internal", "x@example.net"]
    assert lookup(s, q, "sqlite-forwards.cf", "john@example.org") == []
    assert lookup(s, q, "sqlite-public.cf", "shared@public.internal") == ["vmail+Shared@mailbox.internal"]
    assert lookup(s, q, "sqlite-public.cf", "gone@public.internal") == []


def test_postfix_internal_and_refused_recipients(state):
    s, q = state
    internal = "REJECT 5.7.1 access denied"
    assert lookup(s, q, "sqlite-internal.cf", "sales@example.org") == [internal]   # wildcard, internal
    assert lookup(s, q, "sqlite-internal.cf", "info@example.com") == [internal]    # domain address
    assert lookup(s, q, "sqlite-internal.cf", "info@example.org") == []            # wildcard, not internal
    assert lookup(s, q, "sqlite-internal.cf", "ann@example.org") == [internal]     # automatic, internal
    assert lookup(s, q, "sqlite-internal.cf", "ann@example.com") == []             # no automatic addresses
    assert lookup(s, q, "sqlite-internal.cf", "sales@unknown.example") == []
    refused = "sqlite-recipient-access.cf"
    assert lookup(s, q, refused, "john@mailbox.internal") == ["REJECT 5.1.1 User unknown"]
    assert lookup(s, q, refused, "off@example.org") == ["REJECT 5.2.1 Mailbox disabled"]
    assert lookup(s, q, refused, "off@example.com") == []  # addusers off: not a mailbox address
    assert lookup(s, q, refused, "john@example.org") == []


def test_quota_policy_asked_only_where_it_can_refuse(state, tmp_path):
    s, q = state
    skip = "sqlite-quota-skip.cf"
    # No default quota (the fixture): only a mailbox with a custom quota is checked.
    assert lookup(s, q, skip, "ann@example.org") == ["OK"]
    assert lookup(s, q, skip, "big@example.org") == []               # custom 500 MiB
    # A default quota: every mailbox the mail reaches by its own name is checked.
    limited = Store(tmp_path / "state.sqlite")
    fill(limited)
    with limited.transaction():
        limited.set("mailbox_settings", {**limited.get("mailbox_settings"), "quota": {"limit": 100}})
        put_mailbox(limited, {"user": "free", "quota_custom": True, "quota_limit": 0})
        put_address(limited, "own", "example.org", [{"dtype": "user", "name": "own"}, {"dtype": "user", "name": "x"}])
    staged = ConfigTree(tmp_path / "config").stage(render_context(limited))
    ql = {f"postfix/{skip}": _config_queries((staged / "postfix" / skip).read_text())}
    assert lookup(limited, ql, skip, "info@example.org") == ["OK"]   # -> john: quota-status would check "info"
    assert lookup(limited, ql, skip, "postmaster@example.org") == ["OK"]  # -> a public mailbox
    assert lookup(limited, ql, skip, "free@example.org") == ["OK"]   # custom quota: none
    assert lookup(limited, ql, skip, "ann@example.org") == []        # automatic address, default quota
    assert lookup(limited, ql, skip, "own@example.org") == []        # delivers to its own name's mailbox
    assert lookup(limited, ql, skip, "nobody@example.org") == []
    limited.close()


def test_postfix_relay_rules_enabled_only(state):
    s, q = state
    assert lookup(s, q, "sqlite-relay-sender.cf", "@example.org") == ["[smart.example.net]:465"]
    assert lookup(s, q, "sqlite-relay-sender-transport.cf", "@example.org") == ["smtps:"]
    assert lookup(s, q, "sqlite-relay-recipient.cf", "example.net") == ["rcpt_smtp:[relay.example.net]:587"]
    assert lookup(s, q, "sqlite-relay-recipient.cf", "off.example") == []
    assert lookup(s, q, "sqlite-relay-tls.cf", "[smart.example.net]:465") == ["encrypt"]
    assert lookup(s, q, "sqlite-relay-tls.cf", "[x.example.net]:25") == []
    # Sender before recipient: a recipient rule's recipient gets the class that looks the
    # sender's rule up (FILTER to its host).
    assert lookup(s, q, "sqlite-relay-order.cf", "example.net") == ["relay_sender_first"]
    assert lookup(s, q, "sqlite-relay-order.cf", "off.example") == []
    assert lookup(s, q, "sqlite-relay-sender-filter.cf", "example.org") == ["FILTER smtps:[smart.example.net]:465"]
    assert lookup(s, q, "sqlite-relay-sender-filter.cf", "example.com") == []


def test_dovecot_userdb_deny_and_spam_retention(state):
    s, q = state

    def rows(name: str, user: str, index: int = 0) -> list[tuple]:
        return [tuple(r) for r in s.conn.execute(dovecot_sql(q[f"dovecot/{name}"][index], user))]

    user_query, iterate_query = q["dovecot/sql-userdb.conf.ext"]
    assert rows("sql-userdb.conf.ext", "big")[0][-1] == "*:storage=500M"
    assert rows("sql-userdb.conf.ext", "john")[0][-1] == "*:storage=0M"  # the default quota: none
    assert rows("sql-userdb.conf.ext", "off") == []
    assert rows("sql-userdb.conf.ext", "vmail") == []
    assert {r[0] for r in s.conn.execute(iterate_query)} == {"big", "john", "off"}
    assert rows("sql-deny.conf.ext", "off") == [("off", None, "Y")]
    assert rows("sql-deny.conf.ext", "john") == []
    assert [tuple(r) for r in s.conn.execute(q["dovecot/spam-retention"][0])] == [("big", 3)]
