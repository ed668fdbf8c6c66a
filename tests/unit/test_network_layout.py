"""The per-link network layout (stack.LINKS, network_layout): who may reach whom."""

from __future__ import annotations

from itertools import permutations
from pathlib import Path

from mailctl.settings import Instance
from mailctl.stack import (
    DAEMONS,
    EDGE,
    INTERNAL_PORTS,
    LINKS,
    build_stack,
    daemon_networks,
    home_network,
    network_layout,
)

INSTANCE = "u1"


def shared_networks(a: str, b: str) -> set[str]:
    return set(daemon_networks(INSTANCE, a)) & set(daemon_networks(INSTANCE, b))


def test_the_links_are_the_ones_the_configuration_uses():
    assert LINKS == {
        "redis": {"rspamd": ("redis",)},
        "openldap": {"postfix": ("ldap",), "dovecot": ("ldap",)},
        "clamav": {"rspamd": ("clamd",)},
        "rspamd": {"postfix": ("milter",), "dovecot": ("controller",)},
        "dovecot": {"postfix": ("lmtp", "sasl", "quota-status")},
        "postfix": {"dovecot": ("sieve-out",)},
    }
    for server, clients in LINKS.items():
        for ports in clients.values():
            assert set(ports) <= set(INTERNAL_PORTS[server]), server


def test_two_daemons_share_a_network_only_where_one_serves_the_other():
    for a, b in permutations(DAEMONS, 2):
        linked = a in LINKS.get(b, {}) or b in LINKS.get(a, {})
        assert bool(shared_networks(a, b)) == linked, (a, b)
        if a in LINKS.get(b, {}):  # the client reaches the server where it has its address
            assert home_network(INSTANCE, b) in daemon_networks(INSTANCE, a)


def test_untrusted_parsers_reach_only_what_they_need():
    assert not shared_networks("clamav", "redis") and not shared_networks("clamav", "openldap")
    assert not shared_networks("clamav", "dovecot") and not shared_networks("clamav", "postfix")
    assert shared_networks("rspamd", "redis") == {"u1-redis"}
    assert not shared_networks("rspamd", "openldap")


def test_service_networks_are_internal_and_edges_reach_out():
    layout = {n.name: n for n in network_layout(INSTANCE)}
    assert {n for n, spec in layout.items() if not spec.internal} == {"u1", "u1-clamav-edge", "u1-rspamd-edge",
                                                                      "u1-dovecot-edge"}
    assert {n for n, spec in layout.items() if spec.internal} == {f"u1-{d}" for d in LINKS}
    assert layout["u1"].members == ("postfix",)  # the public ports land on postfix's edge alone
    assert layout["u1-openldap"].members == ("openldap", "dovecot", "postfix")
    for daemon in DAEMONS:  # every network a daemon joins is in the layout, and it is a member
        assert all(daemon in layout[n].members for n in daemon_networks(INSTANCE, daemon))
    # redis and openldap have no way out; the others' primary network is their edge
    for daemon in DAEMONS:
        first = layout[daemon_networks(INSTANCE, daemon)[0]]
        assert first.internal == (daemon not in EDGE), daemon


def test_hosts_files_name_only_the_daemon_and_its_servers():
    stack = build_stack(Instance(name=INSTANCE, state_root=Path("/tmp/u1-state")), "mail.example.org")
    addresses = {d: f"10.99.{i}.254" for i, d in enumerate(DAEMONS)}
    known = {spec.daemon: dict(spec.with_addresses(addresses).addresses) for spec in stack.containers}
    assert set(known["clamav"]) == {"clamav"}
    assert set(known["rspamd"]) == {"rspamd", "redis", "clamav"}
    assert set(known["postfix"]) == {"postfix", "openldap", "rspamd", "dovecot"}
    assert known["postfix"]["dovecot"] == addresses["dovecot"]


def test_the_layout_is_part_of_the_spec_hash():
    """An instance made with the one shared network gets its containers made again on `up`."""
    from dataclasses import replace

    spec = build_stack(Instance(name=INSTANCE, state_root=Path("/tmp/u1-state")), "h.example.org").container("rspamd")
    old = replace(spec, networks=(INSTANCE,), home_network=INSTANCE)
    assert old.spec_hash() != spec.spec_hash()
