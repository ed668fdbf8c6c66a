"""Small protocol helpers for tests: TLS contexts, greetings, waiting for delivery."""

from __future__ import annotations

import email
import imaplib
import json
import smtplib
import socket
import ssl
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TypeVar

T = TypeVar("T")

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


# ---- helpers shared by the mail-flow tests ------------------------------------------------


# Where the tests' stand-ins for outside servers (an external LDAP, an old IMAP server) run:
# podman's default network, outside the instance's isolated networks, reached from the
# daemons through the host as they would reach a server on the LAN or the Internet.
OUTSIDE_NETWORK = "podman"


def daemon_address(instance: str, daemon: str, engine: str = "podman") -> str:
    """A daemon's fixed address, on the network where the other daemons (and the host) reach
    it (mailctl.stack.home_network: its service network)."""
    from mailctl.stack import home_network

    out = subprocess.run([engine, "inspect", f"{instance}-{daemon}"], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)[0]["NetworkSettings"]["Networks"][home_network(instance, daemon)]["IPAddress"]


def network_gateway(instance: str) -> str:
    """The host's address on an instance's network: where the containers reach the test's
    servers, and the address a client on the host appears from."""
    out = subprocess.run(["podman", "network", "inspect", instance], capture_output=True, text=True,
                         check=True).stdout
    net = json.loads(out)[0]
    if net.get("subnets"):
        return net["subnets"][0]["gateway"]
    return net["plugins"][0]["ipam"]["ranges"][0][0]["gateway"]  # CNI backend


def token(length: int = 12) -> str:
    """A unique marker for subjects, names and message ids."""
    return uuid.uuid4().hex[:length]


def message(sender: str, to: str, subject: str) -> EmailMessage:
    """A small, well-formed message."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"], msg["Message-ID"] = formatdate(localtime=True), make_msgid(domain="client.example.net")
    msg.set_content(f"Test message {subject}.\nRegards.\n")
    return msg


def send(cli, m: EmailMessage, port: int = 25) -> None:
    """Send `m` to the instance's port 25 (or `port`) as an outside client would."""
    with smtplib.SMTP(HOST, cli.port(port), timeout=30) as s:
        s.ehlo("client.example.net")
        s.send_message(m)


def rcpt(cli, address: str, port: int = 25, size: int | None = None,
         sender: str = "someone@example.net") -> tuple[int, str]:
    """The answer to RCPT TO from an outside client (MAIL FROM declares `size` if given).

    An smtpd process remembers the address resolution of its last 100 (sender, recipient)
    pairs across sessions: a new `sender` makes it resolve the recipient again."""
    with smtplib.SMTP(HOST, cli.port(port), timeout=30) as s:
        s.ehlo("client.example.net")
        s.mail(sender, [f"SIZE={size}"] if size else [])
        code, msg = s.rcpt(address)
        return code, msg.decode()


def postfix_reloads(cli) -> int:
    """How many times the instance's postfix reloaded since its container started (its log)."""
    logs = subprocess.run(["podman", "logs", f"{cli.instance}-postfix"], capture_output=True, text=True)
    return (logs.stdout + logs.stderr).count("reload -- version")


@contextmanager
def imaps(cli, login: str, password: str) -> Iterator[imaplib.IMAP4_SSL]:
    """An IMAPS (993) session, logged out at the end whatever happens."""
    conn = imaplib.IMAP4_SSL(HOST, cli.port(993), ssl_context=insecure_tls(), timeout=15)
    try:
        conn.login(login, password)
        yield conn
    finally:
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def inbox_subjects(cli, user: str, password: str, needle: str) -> int:
    """How many INBOX messages of `user` have `needle` in their subject (IMAP, STARTTLS)."""
    with imaplib.IMAP4(HOST, cli.port(143), timeout=20) as imap:
        imap.starttls(ssl_context=insecure_tls())
        imap.login(user, password)
        imap.select("INBOX", readonly=True)
        _, data = imap.search(None, "SUBJECT", f'"{needle}"')
        imap.logout()
        return len(data[0].split())


def wait_for(check: Callable[[], T], what: str, timeout: float = 30) -> T:
    """Poll `check` until it returns something true; return it, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def smtp_send(cli, msg) -> tuple[int, str]:
    """Send `msg` on port 25 from an outside client: (250, "") or the refusal's (code, text)."""
    try:  # a long timeout: a client that gives up after DATA sends the message again
        with smtplib.SMTP(HOST, cli.port(25), timeout=60) as s:
            s.ehlo("client.example.net")
            s.send_message(msg)
        return 250, ""
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        return code, text.decode(errors="replace")
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code, exc.smtp_error.decode(errors="replace")


def message_ids(cli, user: str, password: str) -> Counter:
    """Message-IDs of every message in `user`'s INBOX and Junk (IMAPS), with their counts."""
    ids: Counter = Counter()
    conn = imaplib.IMAP4_SSL(HOST, cli.port(993), ssl_context=insecure_tls(), timeout=30)
    try:
        conn.login(user, password)
        for folder in ("INBOX", "Junk"):
            typ, count = conn.select(folder, readonly=True)
            if typ != "OK" or count[0] in (b"0", None):
                continue
            _, data = conn.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            for item in data:
                if isinstance(item, tuple):
                    ids[email.message_from_bytes(item[1])["Message-ID"]] += 1
    finally:
        conn.logout()
    return ids
