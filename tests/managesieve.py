"""A tiny ManageSieve (RFC 5804) client: STARTTLS, AUTHENTICATE PLAIN, scripts."""

from __future__ import annotations

import base64
import re
import socket
import ssl

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")


class ManageSieveError(Exception):
    """The server answered NO or BYE."""


class ManageSieve:
    """One connection: `capabilities` holds the last capability listing (name -> value)."""

    def __init__(self, host: str, port: int, timeout: float = 10):
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.capabilities = self._capabilities(self._response())

    def _line(self) -> bytes:
        line = self.file.readline()
        if not line:
            raise ManageSieveError("connection closed")
        return line

    def _response(self) -> list[bytes]:
        """Data lines (literals inlined) up to the final OK; NO/BYE raise."""
        lines = []
        while True:
            line = self._line()
            literal = _LITERAL.search(line)
            if literal:
                line = line[:literal.start()] + self.file.read(int(literal.group(1))) + self._line()
            word = line.split(b" ", 1)[0].strip().upper()
            if word == b"OK":
                return lines
            if word in (b"NO", b"BYE"):
                raise ManageSieveError(line.decode(errors="replace").strip())
            lines.append(line)

    @staticmethod
    def _capabilities(lines: list[bytes]) -> dict[str, str]:
        caps = {}
        for line in lines:
            parts = re.findall(rb'"((?:[^"\\]|\\.)*)"', line)
            if parts:
                caps[parts[0].decode().upper()] = parts[1].decode() if len(parts) > 1 else ""
        return caps

    def command(self, text: str, literal: str | None = None) -> list[bytes]:
        data = text.encode()
        if literal is not None:
            body = literal.encode()
            data += b" {%d+}\r\n" % len(body) + body
        self.sock.sendall(data + b"\r\n")
        return self._response()

    def starttls(self, context: ssl.SSLContext) -> None:
        self.command("STARTTLS")
        self.sock = context.wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")
        self.capabilities = self._capabilities(self._response())  # sent again after TLS

    def authenticate_plain(self, user: str, password: str) -> None:
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.command(f'AUTHENTICATE "PLAIN" "{token}"')

    def putscript(self, name: str, script: str) -> None:
        self.command(f'PUTSCRIPT "{name}"', script)

    def setactive(self, name: str) -> None:
        self.command(f'SETACTIVE "{name}"')

    def listscripts(self) -> list[str]:
        return [line.decode() for line in self.command("LISTSCRIPTS")]

    def logout(self) -> None:
        try:
            self.command("LOGOUT")
        finally:
            self.sock.close()
