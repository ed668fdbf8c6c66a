"""A small authoritative DNS server for tests (UDP), answering from a dict it can change.

    server = DnsServer("10.89.0.1", 3553, {("maps.rspamd.com", "A"): "192.0.2.1"}).start()
    server.records[("2.0.89.10.bl.example", "A")] = "127.0.0.2"   # list an address
    server.stop()

Names not in `records` get NXDOMAIN; every answer has TTL 0 (no caching between steps).
`queries` records each (name, type) asked, to show a daemon really asked.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


@dataclass
class DnsServer:
    host: str
    port: int
    records: dict[tuple[str, str], str] = field(default_factory=dict)
    queries: list[tuple[str, str]] = field(default_factory=list)
    _sock: socket.socket | None = None

    def start(self) -> DnsServer:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, self.port))
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._sock:
            self._sock.close()
            self._sock = None

    def _serve(self) -> None:
        sock = self._sock
        while True:
            try:
                data, peer = sock.recvfrom(4096)
            except OSError:
                return  # closed
            try:
                sock.sendto(self._answer(data), peer)
            except Exception:  # noqa: BLE001 - a malformed query gets no answer
                continue

    def _answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rtype))
        value = self.records.get((name, rtype))
        if value is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            response.answer.append(dns.rrset.from_text(question.name, 0, "IN", rtype, value))
        return response.to_wire()
