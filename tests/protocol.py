"""Small protocol helpers for tests: TLS contexts, greetings, waiting for delivery."""

from __future__ import annotations

import socket
import ssl

HOST = "127.0.0.1"


def insecure_tls() -> ssl.SSLContext:
    """The test instance uses a self-signed certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def sieve_greeting(port: int, timeout: float = 5) -> str:
    """Read ManageSieve's capability lines up to the final OK."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        data = b""
        while b"\r\nOK" not in data and not data.startswith(b"OK"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace")
