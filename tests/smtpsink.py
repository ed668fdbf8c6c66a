"""A small SMTP server for tests: a relay host that records what postfix sends it.

It speaks enough ESMTP for the postfix SMTP client: EHLO, optional STARTTLS (or TLS from
the first byte), AUTH PLAIN
and LOGIN (the credentials are recorded; `require_auth` refuses MAIL before AUTH),
MAIL, RCPT, DATA, RSET, NOOP, QUIT. Each accepted message is kept in `messages`.
"""

from __future__ import annotations

import base64
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass, field


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    auth: tuple[str, str] | None   # (user, password) the client authenticated with
    tls: bool


@dataclass
class SmtpSink:
    host: str
    port: int = 0
    tls_context: ssl.SSLContext | None = None     # offer STARTTLS when set
    implicit_tls: bool = False                     # TLS from the first byte (port 465 style)
    require_auth: bool = False
    messages: list[Received] = field(default_factory=list)
    auth_attempts: list[tuple[str, str]] = field(default_factory=list)
    _server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> SmtpSink:
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                sink._session(self.connection)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        tls = False
        if self.implicit_tls and self.tls_context:
            try:
                conn = self.tls_context.wrap_socket(conn, server_side=True)
            except (OSError, ValueError):
                return
            tls = True
        stream = conn.makefile("rwb")
        auth: tuple[str, str] | None = None
        sender, recipients = "", []

        def reply(text: str) -> None:
            stream.write(text.encode() + b"\r\n")
            stream.flush()

        def readline() -> str:
            line = stream.readline()
            if not line:
                raise EOFError
            return line.decode(errors="replace").rstrip("\r\n")

        reply("220 sink.test ESMTP")
        try:
            while True:
                line = readline()
                verb, _, arg = line.partition(" ")
                verb = verb.upper()
                if verb in ("EHLO", "HELO"):
                    caps = ["250-sink.test"]
                    if self.tls_context and not tls:
                        caps.append("250-STARTTLS")
                    caps += ["250-AUTH PLAIN LOGIN", "250 8BITMIME"]
                    reply("\r\n".join(caps))
                elif verb == "STARTTLS" and self.tls_context and not tls:
                    reply("220 2.0.0 go ahead")
                    conn = self.tls_context.wrap_socket(conn, server_side=True)
                    stream = conn.makefile("rwb")
                    tls = True
                elif verb == "AUTH":
                    mech, _, initial = arg.partition(" ")
                    if mech.upper() == "PLAIN":
                        if not initial:
                            reply("334 ")
                            initial = readline()
                        _, user, password = base64.b64decode(initial).decode().split("\0")
                    elif mech.upper() == "LOGIN":
                        reply("334 " + base64.b64encode(b"Username:").decode())
                        user = base64.b64decode(readline()).decode()
                        reply("334 " + base64.b64encode(b"Password:").decode())
                        password = base64.b64decode(readline()).decode()
                    else:
                        reply("504 5.5.4 mechanism not supported")
                        continue
                    self.auth_attempts.append((user, password))
                    auth = (user, password)
                    reply("235 2.7.0 authenticated")
                elif verb == "MAIL":
                    if self.require_auth and auth is None:
                        reply("530 5.7.0 authentication required")
                        continue
                    sender, recipients = arg.split(":", 1)[1].strip().split(" ")[0].strip("<>"), []
                    reply("250 2.1.0 ok")
                elif verb == "RCPT":
                    recipients.append(arg.split(":", 1)[1].strip().split(" ")[0].strip("<>"))
                    reply("250 2.1.5 ok")
                elif verb == "DATA":
                    reply("354 go ahead")
                    data = b""
                    while True:
                        chunk = stream.readline()
                        if chunk in (b".\r\n", b".\n", b""):
                            break
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                    self.messages.append(Received(sender, recipients, data, auth, tls))
                    reply("250 2.0.0 queued as SINK")
                elif verb == "RSET":
                    sender, recipients = "", []
                    reply("250 2.0.0 ok")
                elif verb == "QUIT":
                    reply("221 2.0.0 bye")
                    return
                else:
                    reply("250 2.0.0 ok")
        except (EOFError, OSError, ValueError):
            return
