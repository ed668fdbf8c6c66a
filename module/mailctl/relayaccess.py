"""Relay access: who may relay through port 25 without AUTH (the relay networks), and
the sender/login match on 587/465 (where mail goes next is relayrules.py's).

The networks go into postfix `mynetworks` (main.cf); the sender/login match is
`reject_sender_login_mismatch` on submission and smtps, with login maps read from the
state database and the user domain's LDAP at query time (templates/postfix/*sender*).
"""

from __future__ import annotations

import ipaddress

from .errors import Reject

# The widest public network a site may let relay: a /8 is the largest IPv4 block ever
# given to one organisation, a /32 the smallest IPv6 block a registry gives an ISP.
# Wider networks holding public addresses (0.0.0.0/1 + 128.0.0.0/1...) would make an
# open relay by pieces. Private, loopback and link-local space may be listed whole.
MIN_PUBLIC_PREFIX = {4: 8, 6: 32}
# Address space no site can route from the Internet: private, shared (CGNAT), loopback,
# link-local and unique local.
NON_PUBLIC = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "fc00::/7", "fe80::/10", "::1/128"))


def network_problem(text: str) -> tuple[str, str] | None:
    """(error code, message) when `text` may not be a relay network, else None.

    A network with host bits set (10.0.0.1/24) is accepted, as NS8 does: postfix gets
    its network (10.0.0.0/24, render.postfix_network).
    """
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return "networks_invalid", "not an IP address or CIDR network"
    if net.prefixlen == 0:
        return "networks_open_relay", "a network of every address would make an open relay"
    widest = MIN_PUBLIC_PREFIX[net.version]
    if net.prefixlen < widest and not _non_public(net):
        return "networks_open_relay", (f"a public network wider than /{widest} would make an open relay: "
                                       "list the networks the site owns")
    return None


def _non_public(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """True when `net` lies inside one block of NON_PUBLIC space."""
    return any(net.version == block.version and net.subnet_of(block) for block in NON_PUBLIC)


def normalize_networks(networks: list[str], reject: Reject) -> list[str]:
    """The networks as the client wrote them (NS8 lists them so), duplicates (same
    network in any notation) dropped, order kept.

    A zero-length prefix (an open relay) or a text that is no network is refused, naming
    the list item (`networks.N`).
    """
    result: list[str] = []
    seen: set[str] = set()
    for index, text in enumerate(networks):
        text = text.strip()
        problem = network_problem(text)
        if problem:
            reject(f"networks.{index}", problem[0], text, problem[1])
        net = ipaddress.ip_network(text, strict=False)
        key = str(net) if "/" in text else str(net.network_address)
        if key not in seen:
            seen.add(key)
            result.append(text)
    return result
