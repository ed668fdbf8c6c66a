"""Protocol probes: does a published port answer as its daemon should?"""

from __future__ import annotations

import socket
import ssl

# What each port's greeting starts with.
GREETINGS = {
    "smtp": b"220", "submission": b"220", "smtps": b"220",
    "imap": b"* OK", "imaps": b"* OK",
    "pop3": b"+OK", "pop3s": b"+OK",
}


def _client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the probe checks the daemon, not the certificate
    return ctx


def probe_port(name: str, host: str, port: int, tls: bool, timeout: float = 3.0) -> tuple[bool, str]:
    """Connect and read the greeting; return (ok, first line or error)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock = _client_tls().wrap_socket(raw) if tls else raw
            if name == "rspamd":
                sock.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
                data = sock.recv(4096)
                return b"pong" in data, data.split(b"\r\n", 1)[0].decode(errors="replace")
            data = b""
            while b"\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            if name == "sieve":
                # ManageSieve sends its capabilities, then a line starting with OK.
                while not any(line.startswith(b"OK") for line in data.split(b"\r\n")):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                return b"\r\nOK" in data or data.startswith(b"OK"), data.split(b"\r\n")[0].decode()
            line = data.split(b"\r\n", 1)[0]
            return line.startswith(GREETINGS[name]), line.decode(errors="replace")
    except (OSError, ssl.SSLError) as exc:
        return False, str(exc)
