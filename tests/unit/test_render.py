"""Rendering: templates from the state, generations, change detection."""

from __future__ import annotations

import os
from pathlib import Path

from mailctl.context import render_context
from mailctl.domains import new_domain, put_domain
from mailctl.mailboxes import put_mailbox
from mailctl.render import ConfigTree, postfix_network
from mailctl.stack import DAEMONS
from mailctl.state import Store


def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db" / "state.sqlite")


def test_defaults_render_every_daemon(tmp_path):
    tree = ConfigTree(tmp_path / "config")
    staged = tree.stage(render_context(store(tmp_path)))
    for daemon in ("postfix", "dovecot", "rspamd", "clamav", "redis", "openldap"):
        assert (staged / daemon).is_dir(), daemon
    main_cf = (staged / "postfix" / "main.cf").read_text()
    assert "maximal_queue_lifetime = 120h" in main_cf
    assert "sqlite:/etc/postfix/sqlite-domains.cf" in main_cf
    assert not list(staged.rglob("_*")), "partials are not rendered"


def test_adding_a_domain_changes_no_rendered_file(tmp_path):
    """Domains are read live by postfix: no daemon must reload for them."""
    s = store(tmp_path)
    tree = ConfigTree(tmp_path / "config")
    tree.swap(tree.stage(render_context(s)))
    with s.transaction():
        put_domain(s, new_domain("example.com"))
    assert tree.changed_daemons(tree.stage(render_context(s)), DAEMONS) == []


def test_queue_lifetime_changes_postfix_only(tmp_path):
    s = store(tmp_path)
    tree = ConfigTree(tmp_path / "config")
    tree.swap(tree.stage(render_context(s)))
    with s.transaction():
        s.set("queue", {"maximal_queue_lifetime": 48})
    staged = tree.stage(render_context(s))
    assert tree.changed_daemons(staged, DAEMONS) == ["postfix"]
    assert "maximal_queue_lifetime = 48h" in (staged / "postfix" / "main.cf").read_text()


def test_unchanged_files_keep_their_modification_time(tmp_path):
    """postfix waits before reading a map config modified within the last second."""
    s = store(tmp_path)
    tree = ConfigTree(tmp_path / "config")
    first = tree.stage(render_context(s))
    tree.swap(first)
    ldap_cf, main_cf = first / "postfix" / "ldap-users.cf", first / "postfix" / "main.cf"
    for f in (ldap_cf, main_cf):
        os.utime(f, (1_000_000, 1_000_000))
    with s.transaction():
        s.set("queue", {"maximal_queue_lifetime": 48})
    staged = tree.stage(render_context(s))
    assert (staged / "postfix" / "ldap-users.cf").stat().st_mtime == 1_000_000
    assert (staged / "postfix" / "main.cf").stat().st_mtime > 1_000_000  # changed: a new time


def test_swap_and_restore_are_atomic_links(tmp_path):
    s = store(tmp_path)
    tree = ConfigTree(tmp_path / "config")
    first = tree.stage(render_context(s))
    assert tree.swap(first) is None
    second = tree.stage(render_context(s))
    assert tree.swap(second) == first and tree.current() == second
    tree.restore(first, second)
    assert tree.current() == first and not second.exists()
    tree.prune()
    assert [p.name for p in (tmp_path / "config").glob("gen-*")] == [first.name]


def test_relay_networks_are_written_the_postfix_way(tmp_path):
    assert postfix_network("10.0.0.0/8") == "10.0.0.0/8"
    assert postfix_network("2001:db8::/32") == "[2001:db8::]/32"
    # as clients send them (NS8 accepts host bits and any IPv6 notation): postfix gets the network
    assert postfix_network("10.1.2.3/24") == "10.1.2.0/24"
    assert postfix_network("2002::1234:abcd:ffff:c0a8:101/64") == "[2002:0:0:1234::]/64"
    assert postfix_network("2001:DB8:0::1") == "[2001:db8::1]"
    assert postfix_network("::1") == "[::1]"
    s = store(tmp_path)
    with s.transaction():
        s.set("relay", {"networks": ["192.168.12.42", "2001:db8::/32"], "postfix_restricted_sender": False})
    staged = ConfigTree(tmp_path / "config").stage(render_context(s))
    mynetworks = next(line for line in (staged / "postfix" / "main.cf").read_text().splitlines()
                      if line.startswith("mynetworks"))
    assert "192.168.12.42" in mynetworks and "[2001:db8::]/32" in mynetworks


def test_quota_check_at_rcpt_only_while_some_mailbox_has_a_quota(tmp_path):
    """Without any quota, dovecot's quota-status could only answer DUNNO: postfix skips it;
    so does LMTP's quota check at RCPT."""
    s = store(tmp_path)
    tree = ConfigTree(tmp_path / "config")

    def policy_in_main_cf() -> bool:
        staged = tree.stage(render_context(s))
        in_postfix = "check_policy_service { inet:dovecot:12340" in (staged / "postfix" / "main.cf").read_text()
        in_lmtp = "lmtp_rcpt_check_quota = yes" in (staged / "dovecot" / "dovecot.conf").read_text()
        assert in_postfix == in_lmtp
        return in_postfix

    assert not policy_in_main_cf()
    with s.transaction():  # a custom quota of 0 is no quota either
        put_mailbox(s, {"user": "alice", "quota_custom": True, "quota_limit": 0})
    assert not policy_in_main_cf()
    with s.transaction():
        put_mailbox(s, {"user": "alice", "quota_custom": True, "quota_limit": 10})
    assert policy_in_main_cf()
    with s.transaction():
        put_mailbox(s, {"user": "alice", "quota_custom": False})
        s.set("mailbox_settings", {**s.settings()["mailbox_settings"], "quota": {"limit": 500}})
    assert policy_in_main_cf()
