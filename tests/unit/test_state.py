"""The state store: migrations, transactions, domains, addresses and their postfix targets."""

from __future__ import annotations

import pytest

from mailctl.state import MAILBOX_DOMAIN, Store, new_domain, recipient_of


@pytest.fixture
def s(tmp_path) -> Store:
    return Store(tmp_path / "state.sqlite")


def test_fresh_state_has_postmaster_and_defaults(s):
    assert [a["local"] for a in s.list_addresses()] == ["postmaster"]
    assert s.get("queue") == {"maximal_queue_lifetime": 120}
    assert s.get("configured") is False


def test_reopening_keeps_data_and_schema_version(tmp_path):
    s = Store(tmp_path / "state.sqlite")
    with s.transaction():
        s.put_domain(new_domain("example.com"))
    s.close()
    again = Store(tmp_path / "state.sqlite")
    assert [d["domain"] for d in again.list_domains()] == ["example.com"]


def test_a_failed_transaction_changes_nothing(s):
    before = s.dump()
    with pytest.raises(RuntimeError):
        with s.transaction():
            s.put_domain(new_domain("example.com"))
            raise RuntimeError("boom")
    assert s.dump() == before


def test_destinations_expand_to_postfix_recipients():
    assert recipient_of({"dtype": "user", "name": "John"}) == f"john@{MAILBOX_DOMAIN}"
    assert recipient_of({"dtype": "external", "name": "x@example.net"}) == "x@example.net"
    assert recipient_of({"dtype": "group", "name": "sales"}).startswith("sales@")


def test_address_targets_follow_destinations(s):
    with s.transaction():
        s.put_address("info", "*", [{"dtype": "user", "name": "john"}, {"dtype": "external", "name": "a@b.org"}])
    rows = s.conn.execute("SELECT target FROM address_targets WHERE local='info' ORDER BY target").fetchall()
    assert [r[0] for r in rows] == ["a@b.org", f"john@{MAILBOX_DOMAIN}"]
    with s.transaction():
        s.delete_address("info", "*")
    assert s.conn.execute("SELECT count(*) FROM address_targets WHERE local='info'").fetchone()[0] == 0


def test_forward_with_and_without_copy(s):
    fwd = [{"dtype": "external", "name": "far@example.net"}]
    with s.transaction():
        s.put_mailbox({"user": "john", "forward": fwd, "keepcopy": True})
    targets = {r[0] for r in s.conn.execute("SELECT target FROM forward_targets WHERE user='john'")}
    assert targets == {"far@example.net", f"john@{MAILBOX_DOMAIN}"}
    with s.transaction():
        s.put_mailbox({"user": "john", "keepcopy": False})
    targets = {r[0] for r in s.conn.execute("SELECT target FROM forward_targets WHERE user='john'")}
    assert targets == {"far@example.net"}


def test_catchall_targets_follow_the_domain(s):
    with s.transaction():
        s.put_domain(new_domain("example.com", addusers=False, catchall={"dtype": "user", "name": "box"}))
    assert s.conn.execute("SELECT target FROM catchall_targets").fetchall()[0][0] == f"box@{MAILBOX_DOMAIN}"
    with s.transaction():
        s.delete_domain("example.com")
    assert s.conn.execute("SELECT count(*) FROM catchall_targets").fetchone()[0] == 0
