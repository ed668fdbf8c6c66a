"""The state store (migrations, transactions, settings) and the rows of domains, addresses and
mailboxes with their postfix targets."""

from __future__ import annotations

import pytest

from mailctl.addresses import delete_address, drop_destination, put_address, stored_addresses
from mailctl.domains import delete_domain, list_domains, new_domain, put_domain
from mailctl.mailboxes import get_mailbox, put_mailbox
from mailctl.recipients import MAILBOX_DOMAIN, destination_name, recipient_of
from mailctl.state import Store


@pytest.fixture
def s(tmp_path) -> Store:
    return Store(tmp_path / "state.sqlite")


def test_fresh_state_has_postmaster_and_defaults(s):
    assert [a["local"] for a in stored_addresses(s)] == ["postmaster"]
    assert s.get("queue") == {"maximal_queue_lifetime": 120}
    assert s.get("configured") is False


def test_reopening_keeps_data_and_schema_version(tmp_path):
    s = Store(tmp_path / "state.sqlite")
    with s.transaction():
        put_domain(s, new_domain("example.com"))
    s.close()
    again = Store(tmp_path / "state.sqlite")
    assert [d["domain"] for d in list_domains(again)] == ["example.com"]


def test_a_failed_transaction_changes_nothing(s):
    before = s.dump()
    with pytest.raises(RuntimeError):
        with s.transaction():
            put_domain(s, new_domain("example.com"))
            raise RuntimeError("boom")
    assert s.dump() == before


def test_destinations_expand_to_postfix_recipients():
    assert recipient_of({"dtype": "user", "name": "John"}) == f"john@{MAILBOX_DOMAIN}"
    assert recipient_of({"dtype": "external", "name": "x@example.net"}) == "x@example.net"
    assert recipient_of({"dtype": "group", "name": "sales"}).startswith("sales@")


def test_address_targets_follow_destinations(s):
    with s.transaction():
        put_address(s, "info", "*", [{"dtype": "user", "name": "john"}, {"dtype": "external", "name": "a@b.org"}])
    rows = s.conn.execute("SELECT target FROM address_targets WHERE local='info' ORDER BY target").fetchall()
    assert [r[0] for r in rows] == ["a@b.org", f"john@{MAILBOX_DOMAIN}"]
    with s.transaction():
        delete_address(s, "info", "*")
    assert s.conn.execute("SELECT count(*) FROM address_targets WHERE local='info'").fetchone()[0] == 0


def test_forward_with_and_without_copy(s):
    fwd = [{"dtype": "external", "name": "far@example.net"}]
    with s.transaction():
        put_mailbox(s, {"user": "john", "forward": fwd, "keepcopy": True})
    targets = {r[0] for r in s.conn.execute("SELECT target FROM forward_targets WHERE user='john'")}
    assert targets == {"far@example.net", f"john@{MAILBOX_DOMAIN}"}
    with s.transaction():
        put_mailbox(s, {"user": "john", "keepcopy": False})
    targets = {r[0] for r in s.conn.execute("SELECT target FROM forward_targets WHERE user='john'")}
    assert targets == {"far@example.net"}


def test_catchall_targets_follow_the_domain(s):
    with s.transaction():
        put_domain(s, new_domain("example.com", addusers=False, catchall={"dtype": "user", "name": "box"}))
    assert s.conn.execute("SELECT target FROM catchall_targets").fetchall()[0][0] == f"box@{MAILBOX_DOMAIN}"
    with s.transaction():
        delete_domain(s, "example.com")
    assert s.conn.execute("SELECT count(*) FROM catchall_targets").fetchone()[0] == 0


def test_a_dropped_destination_leaves_addresses_catchalls_and_forwards(s):
    gone = {"dtype": "public", "name": "Sales"}
    keep = {"dtype": "user", "name": "john"}
    with s.transaction():
        put_address(s, "sales", "*", [gone])
        put_address(s, "info", "*", [gone, keep])
        put_domain(s, new_domain("example.com", addusers=False, catchall=gone))
        put_mailbox(s, {"user": "ann", "forward": [gone], "keepcopy": True})
        drop_destination(s, gone)
    assert {a["local"]: a["destinations"] for a in stored_addresses(s)} == {"info": [keep], "postmaster": [
        {"dtype": "public", "name": "postmaster"}]}  # the built-in public mailbox, as NS8
    assert list_domains(s)[0]["catchall"] is None
    assert s.conn.execute("SELECT count(*) FROM catchall_targets").fetchone()[0] == 0
    assert get_mailbox(s, "ann")["forward"] is None and get_mailbox(s, "ann")["keepcopy"] is False


def test_upsert_inserts_then_updates_the_row_with_the_same_key(s):
    with s.transaction():
        s.upsert("public_mailboxes", {"mailbox": "Sales", "acls": "[]"}, ("mailbox",))
        s.upsert("public_mailboxes", {"mailbox": "sales", "acls": '["x"]'}, ("mailbox",))  # NOCASE key
    rows = s.conn.execute("SELECT mailbox, acls FROM public_mailboxes WHERE mailbox != 'postmaster'")  # built-in
    assert [tuple(r) for r in rows] == [("Sales", '["x"]')]


def test_postmaster_delivers_to_the_builtin_public_mailbox(s):
    """As NS8: the wildcard postmaster goes to the public mailbox "postmaster" (no ACL)."""
    assert s.conn.execute("SELECT acls FROM public_mailboxes WHERE mailbox = 'postmaster'").fetchone()[0] == "[]"
    assert s.conn.execute("SELECT target FROM address_targets WHERE local = 'postmaster' AND domain = '*'"
                          ).fetchall()[0][0] == "postmaster@public.internal"


def test_a_group_with_a_space_is_quoted_for_postfix():
    assert recipient_of({"dtype": "group", "name": "Domain Admins"}) == '"domain admins"@group.internal'
    assert recipient_of({"dtype": "group", "name": "g1"}) == "g1@group.internal"
    assert destination_name({"dtype": "public", "name": "vmail+postmaster"}) == "postmaster"
    assert destination_name({"dtype": "user", "user": "admin"}) == "admin"


def test_two_processes_opening_a_new_database_at_once_migrate_it_once(tmp_path):
    """The web server and an action may open a fresh state together: no migration runs twice."""
    import multiprocessing

    path = tmp_path / "db" / "state.sqlite"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_open_store, args=(path,)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]


def _open_store(path):
    from mailctl.state import Store

    Store(path).close()
