"""Relay access: who may relay through port 25 without AUTH (the relay networks), and
the sender/login match on 587/465 (where mail goes next is relayrules.py's).

The networks go into postfix `mynetworks` (main.cf); the sender/login match is
`reject_sender_login_mismatch` on submission and smtps, with login maps read from the
state database and the user domain's LDAP at query time (templates/postfix/*sender*).
"""

from __future__ import annotations

import ipaddress

from .errors import Reject


def network_problem(text: str) -> tuple[str, str] | None:
    """(error code, message) when `text` may not be a relay network, else None."""
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError:
        try:
            fixed = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return "networks_invalid", "not an IP address or CIDR network"
        return "networks_host_bits", f"host bits are set: use {fixed}"
    if net.prefixlen == 0:
        return "networks_open_relay", "a network of every address would make an open relay"
    return None


def normalize_networks(networks: list[str], reject: Reject) -> list[str]:
    """Canonical text of each IP or CIDR network, duplicates dropped, order kept.

    A network with host bits set (10.0.0.1/24) or a zero-length prefix (an open relay)
    is refused, naming the list item (`networks.N`).
    """
    result: list[str] = []
    for index, text in enumerate(networks):
        problem = network_problem(text)
        if problem:
            reject(f"networks.{index}", problem[0], text, problem[1])
        net = ipaddress.ip_network(text)
        canonical = str(net) if "/" in text else str(net.network_address)
        if canonical not in result:
            result.append(canonical)
    return result
