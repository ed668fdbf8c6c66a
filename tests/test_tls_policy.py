"""TLS and sending policy on a running instance, with real SMTP, IMAP, POP3 and ManageSieve clients.

- AUTH (PLAIN, LOGIN) only after STARTTLS on 587/143/110/4190, implicit TLS on 465/993/995,
  and no AUTH at all on port 25 (MTA to MTA), which still takes mail for local users.
- certificate-changed: the user's certificate replaces the self-signed one on every TLS port;
  a key that is not the certificate's is refused (naming the field); a failed apply puts the
  previous files back.
- Relay: no open relay; set-relay-configuration networks may relay without AUTH; the
  sender/login match (postfix_restricted_sender) on and off.
- testssl.sh on 993 and 465: nothing below TLS 1.2, no weak cipher category.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import imaplib
import json
import poplib
import shutil
import smtplib
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from managesieve import ManageSieve, ManageSieveError
from protocol import HOST, insecure_tls, message, token

pytestmark = pytest.mark.containers

PASSWORD = "Tls-Policy-pass1"
DOMAIN = "example.org"
HOSTNAME = "mail.example.org"
# Users and group of this file (prefixed so they do not collide with other test files).
JOHN, MARY, GROUP = "tpjohn", "tpmary", "tpsales"
EXTERNAL = "someone@example.net"


@pytest.fixture(scope="module")
def mx(mail):
    """The shared instance, configured, with this file's users, group and explicit address."""
    mail.run("configure-module", {"hostname": HOSTNAME, "user_domain": "local", "mail_domain": DOMAIN})
    for user in (JOHN, MARY):
        mail.run("add-user", {"user": user, "password": PASSWORD})
    mail.run("add-group", {"group": GROUP, "members": [JOHN, MARY]})
    mail.run("add-address", {"local": "tpinfo", "atype": "domain", "domain": DOMAIN,
                             "destinations": [{"dtype": "user", "name": JOHN}]})
    yield mail
    mail.run("set-relay-configuration", {"networks": [], "postfix_restricted_sender": False}, expect=None)
    mail.run("remove-address", {"local": "tpinfo", "atype": "domain", "domain": DOMAIN}, expect=None)
    for user in (JOHN, MARY):
        mail.run("remove-user", {"user": user}, expect=None)
    mail.run("remove-group", {"group": GROUP}, expect=None)


# ---------------------------------------------------------------- helpers


def plain(user: str, password: str = PASSWORD) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def smtp_auth(s: smtplib.SMTP, mechanism: str, user: str = JOHN) -> tuple[int, bytes]:
    """AUTH with one mechanism (PLAIN or LOGIN) through smtplib's own implementation."""
    s.user, s.password = user, PASSWORD
    return s.auth(mechanism, getattr(s, f"auth_{mechanism.lower()}"))


def smtp_mechanisms(s: smtplib.SMTP) -> set[str]:
    return set(s.esmtp_features.get("auth", "").split())


def submit(cli, port: int, user: str, sender: str, to: str) -> tuple[int, str]:
    """Submit one message as `user` with envelope sender `sender` on 587 (STARTTLS) or 465.

    Returns the refusal (code, text) of the first refused step, or (250, "") when queued.
    """
    if port == 465:
        s: smtplib.SMTP = smtplib.SMTP_SSL(HOST, cli.port(465), context=insecure_tls(), timeout=20)
    else:
        s = smtplib.SMTP(HOST, cli.port(port), timeout=20)
        s.ehlo("client.example.net")
        s.starttls(context=insecure_tls())
    with s:
        s.ehlo("client.example.net")
        s.login(user, PASSWORD)
        try:
            s.send_message(message(sender, to, f"sender test {token()}"), sender, [to])
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients[to]
            return code, text.decode()
        except smtplib.SMTPResponseException as e:
            return e.smtp_code, e.smtp_error.decode()
    return 250, ""


def imap_login(cli, user: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4(HOST, cli.port(143), timeout=20)
    imap.starttls(ssl_context=insecure_tls())
    imap.login(user, PASSWORD)
    return imap


def wait_delivered(cli, user: str, needle: str, timeout: float = 30) -> None:
    """Poll the INBOX of `user` over IMAP until a message with `needle` in its subject is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        imap = imap_login(cli, user)
        imap.select("INBOX", readonly=True)
        _, data = imap.search(None, "SUBJECT", f'"{needle}"')
        imap.logout()
        if data[0].split():
            return
        time.sleep(0.3)
    pytest.fail(f"{needle!r} never reached {user}")


def wait_relayed(cli, recipient: str, timeout: float = 20) -> None:
    """Postfix tried to deliver to `recipient` through an external relay (no Internet here: the
    attempt is deferred or bounced, and the log says so); a copy still queued is deleted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = subprocess.run(["podman", "logs", f"{cli.instance}-postfix"], capture_output=True, text=True,
                              check=False)
        if any(f"to=<{recipient}>, relay=" in line and "/smtp[" in line
               for line in (logs.stdout + logs.stderr).splitlines()):
            for line in cli.exec("postfix", "postqueue", "-j").splitlines():
                item = json.loads(line)
                if recipient in [r["address"] for r in item["recipients"]]:
                    cli.exec("postfix", "postsuper", "-d", item["queue_id"])
            return
        time.sleep(0.3)
    pytest.fail(f"no relay attempt to {recipient}")


def send25(cli, sender: str, to: str, subject: str) -> tuple[int, str]:
    """Unauthenticated SMTP on port 25: (250, "") when accepted, else the refusal."""
    with smtplib.SMTP(HOST, cli.port(25), timeout=20) as s:
        s.ehlo("client.example.net")
        try:
            s.send_message(message(sender, to, subject), sender, [to])
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients[to]
            return code, text.decode()
    return 250, ""


# ---------------------------------------------------------------- AUTH policy, every port

def test_port25_takes_mail_from_mtas_and_never_offers_auth(mx):
    with smtplib.SMTP(HOST, mx.port(25), timeout=20) as s:
        s.ehlo("mta.example.net")
        assert s.has_extn("starttls") and not s.has_extn("auth")
        assert s.docmd("AUTH", f"PLAIN {plain(JOHN)}")[0] == 503
        s.starttls(context=insecure_tls())
        s.ehlo("mta.example.net")
        assert not s.has_extn("auth"), s.esmtp_features
        code, text = s.docmd("AUTH", f"PLAIN {plain(JOHN)}")
        assert code == 503 and b"authentication not enabled" in text
    tag = token()
    assert send25(mx, EXTERNAL, f"{JOHN}@{DOMAIN}", f"from an MTA {tag}") == (250, "")
    wait_delivered(mx, JOHN, tag)


def test_submission_587_offers_auth_only_after_starttls(mx):
    with smtplib.SMTP(HOST, mx.port(587), timeout=20) as s:
        s.ehlo("client.example.net")
        assert s.has_extn("starttls") and not s.has_extn("auth")
        code, text = s.docmd("AUTH", f"PLAIN {plain(JOHN)}")
        assert code == 530 and b"STARTTLS" in text
        assert s.docmd("MAIL FROM:<x@example.net>")[0] == 530  # nothing without TLS
        s.starttls(context=insecure_tls())
        s.ehlo("client.example.net")
        assert smtp_mechanisms(s) == {"PLAIN", "LOGIN"}
        code, _ = smtp_auth(s, "LOGIN")
        assert code == 235
    with smtplib.SMTP(HOST, mx.port(587), timeout=20) as s:
        s.starttls(context=insecure_tls())
        s.ehlo("client.example.net")
        assert smtp_mechanisms(s) == {"PLAIN", "LOGIN"}
        s.user, s.password = JOHN, "wrong-password"
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.auth("PLAIN", s.auth_plain)
    with smtplib.SMTP(HOST, mx.port(587), timeout=20) as s:
        s.starttls(context=insecure_tls())
        s.ehlo("client.example.net")
        assert smtp_auth(s, "PLAIN")[0] == 235


def test_smtps_465_is_implicit_tls(mx):
    with socket.create_connection((HOST, mx.port(465)), timeout=5) as raw:
        raw.sendall(b"EHLO client.example.net\r\n")
        raw.settimeout(3)
        try:
            answer = raw.recv(100)
        except (TimeoutError, ConnectionResetError):
            answer = b""
        assert not answer.startswith(b"220"), "465 must not speak plain SMTP"
    with smtplib.SMTP_SSL(HOST, mx.port(465), context=insecure_tls(), timeout=20) as s:
        s.ehlo("client.example.net")
        assert smtp_mechanisms(s) == {"PLAIN", "LOGIN"} and not s.has_extn("starttls")
        assert smtp_auth(s, "PLAIN")[0] == 235


def test_imap_143_offers_auth_only_after_starttls(mx):
    with imaplib.IMAP4(HOST, mx.port(143), timeout=20) as imap:
        caps = set(imap.capabilities)
        assert {"STARTTLS", "LOGINDISABLED"} <= caps and not any(c.startswith("AUTH=") for c in caps)
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            imap.login(JOHN, PASSWORD)
        with pytest.raises(imaplib.IMAP4.error):
            imap.authenticate("PLAIN", lambda _: f"\0{JOHN}\0{PASSWORD}".encode())
        imap.starttls(ssl_context=insecure_tls())
        caps = set(imap.capabilities)
        assert {"AUTH=PLAIN", "AUTH=LOGIN"} <= caps and "LOGINDISABLED" not in caps
        assert imap.authenticate("PLAIN", lambda _: f"\0{JOHN}\0{PASSWORD}".encode())[0] == "OK"
        imap.logout()


def test_imaps_993_is_implicit_tls(mx):
    with imaplib.IMAP4_SSL(HOST, mx.port(993), ssl_context=insecure_tls(), timeout=20) as imap:
        assert {"AUTH=PLAIN", "AUTH=LOGIN"} <= set(imap.capabilities)
        answers = iter([JOHN.encode(), PASSWORD.encode()])
        assert imap.authenticate("LOGIN", lambda _: next(answers))[0] == "OK"
        imap.logout()


def test_pop3_110_offers_auth_only_after_stls(mx):
    pop = poplib.POP3(HOST, mx.port(110), timeout=20)
    try:
        capa = pop.capa()
        assert "STLS" in capa and capa.get("SASL") == [] and "USER" not in capa
        with pytest.raises(poplib.error_proto, match="disallowed on non-secure"):
            pop.user(JOHN)
        with pytest.raises(poplib.error_proto, match="Plaintext authentication disabled"):
            pop._shortcmd(f"AUTH PLAIN {plain(JOHN)}")
        pop.stls(context=insecure_tls())
        capa = pop.capa()
        assert set(capa["SASL"]) == {"PLAIN", "LOGIN"} and "USER" in capa
        assert pop._shortcmd(f"AUTH PLAIN {plain(JOHN)}").startswith(b"+OK")
        pop.stat()
    finally:
        pop.quit()


def test_pop3s_995_is_implicit_tls(mx):
    pop = poplib.POP3_SSL(HOST, mx.port(995), context=insecure_tls(), timeout=20)
    try:
        assert set(pop.capa()["SASL"]) == {"PLAIN", "LOGIN"}
        pop.user(JOHN)
        assert pop.pass_(PASSWORD).startswith(b"+OK")
    finally:
        pop.quit()


def test_managesieve_4190_offers_auth_only_after_starttls(mx):
    sieve = ManageSieve(HOST, mx.port(4190))
    try:
        assert "STARTTLS" in sieve.capabilities and sieve.capabilities["SASL"] == ""
        with pytest.raises(ManageSieveError, match="Plaintext authentication disabled"):
            sieve.authenticate_plain(JOHN, PASSWORD)
        sieve.starttls(insecure_tls())
        assert set(sieve.capabilities["SASL"].split()) == {"PLAIN", "LOGIN"}
        sieve.authenticate_plain(JOHN, PASSWORD)
        sieve.listscripts()
    finally:
        sieve.logout()


# ---------------------------------------------------------------- certificate-changed

def make_certificate(hostname: str, kind: str = "rsa") -> tuple[bytes, bytes]:
    """A fresh self-signed (cert PEM, key PEM) for `hostname`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa" \
        else ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def pem_fingerprint(cert_pem: bytes) -> str:
    return x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256()).hex()


def served_fingerprint(cli, port: int) -> str:
    """SHA-256 of the certificate a TLS port serves (implicit TLS or STARTTLS)."""
    ctx = insecure_tls()
    if port in (587, 25):
        with smtplib.SMTP(HOST, cli.port(port), timeout=20) as s:
            s.starttls(context=ctx)
            der = s.sock.getpeercert(binary_form=True)
    elif port == 143:
        with imaplib.IMAP4(HOST, cli.port(port), timeout=20) as imap:
            imap.starttls(ssl_context=ctx)
            der = imap.sock.getpeercert(binary_form=True)
            imap.logout()
    else:
        with socket.create_connection((HOST, cli.port(port)), timeout=20) as raw, ctx.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest()


def wait_served(cli, ports: tuple[int, ...], fingerprint: str, timeout: float = 20) -> dict[int, str]:
    """Each port's served fingerprint, once all equal `fingerprint` (reloads settle) or at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        served = {port: served_fingerprint(cli, port) for port in ports}
        if all(fp == fingerprint for fp in served.values()) or time.monotonic() > deadline:
            return served
        time.sleep(0.5)


TLS_PORTS = (993, 465, 995, 587, 143)


def tls_files(cli) -> dict[str, bytes]:
    tls_dir = cli.state_dir / cli.instance / "tls"
    return {p.name: p.read_bytes() for p in sorted(tls_dir.iterdir()) if p.is_file()}


def test_certificate_changed_installs_user_certificate_on_every_port(mx, tmp_path):
    cert, key = make_certificate(HOSTNAME, "rsa")
    mx.run("certificate-changed", {"certificate": cert.decode(), "key": key.decode()})
    expected = pem_fingerprint(cert)
    assert wait_served(mx, TLS_PORTS, expected) == dict.fromkeys(TLS_PORTS, expected)
    key_file = mx.state_dir / mx.instance / "tls" / "key.pem"
    assert key_file.stat().st_mode & 0o077 == 0, "the private key must not be readable by others"

    # The same from files on the host (an ECDSA pair this time), plus the NS8 event fields.
    cert2, key2 = make_certificate(HOSTNAME, "ec")
    (tmp_path / "c.pem").write_bytes(cert2)
    (tmp_path / "k.pem").write_bytes(key2)
    mx.run("certificate-changed", {"certificate_file": str(tmp_path / "c.pem"), "key_file": str(tmp_path / "k.pem"),
                                   "domain": HOSTNAME, "names": [HOSTNAME]})
    expected = pem_fingerprint(cert2)
    assert wait_served(mx, (993, 465), expected) == dict.fromkeys((993, 465), expected)
    # The bare event (no certificate) only reloads: nothing changes.
    mx.run("certificate-changed", "")
    assert served_fingerprint(mx, 993) == expected


def test_certificate_changed_refuses_bad_pairs_naming_the_field(mx, tmp_path):
    before = tls_files(mx)
    cert, _ = make_certificate(HOSTNAME)
    _, other_key = make_certificate(HOSTNAME)
    cases = [
        ({"certificate": cert.decode(), "key": other_key.decode()}, "key", "key_mismatch"),
        ({"certificate": "not a certificate", "key": other_key.decode()}, "certificate", "certificate_invalid"),
        ({"certificate": cert.decode(), "key": "-----BEGIN PRIVATE KEY-----\nAAAA\n"}, "key", "key_invalid"),
        ({"certificate": cert.decode()}, "key", "key_required"),
        ({"certificate_file": str(tmp_path / "missing.pem"), "key_file": str(tmp_path / "missing.key")},
         "certificate_file", "certificate_file_unreadable"),
        ({"certificate": cert.decode(), "key": other_key.decode(), "unknown": 1}, "unknown", None),
    ]
    for data, field, error in cases:
        r = mx.run("certificate-changed", data, expect=10)
        errors = json.loads(r.stdout)
        assert errors[0]["field"] == field, errors
        if error:
            assert errors[0]["error"] == error, errors
        assert "PRIVATE KEY" not in r.stdout + r.stderr, "a key must never be echoed"
    assert tls_files(mx) == before


def test_certificate_changed_failing_apply_restores_previous_files(mx):
    before = tls_files(mx)
    served = served_fingerprint(mx, 993)
    cert, key = make_certificate(HOSTNAME)
    mx.extra_env["MAIL_FAULT_BAD_POSTFIX"] = "1"  # postfix's config check refuses the apply
    try:
        r = mx.run("certificate-changed", {"certificate": cert.decode(), "key": key.decode()}, expect=None)
    finally:
        mx.extra_env.pop("MAIL_FAULT_BAD_POSTFIX")
    assert r.code == 1 and "postfix refused" in r.stderr
    assert tls_files(mx) == before
    assert served_fingerprint(mx, 993) == served == served_fingerprint(mx, 465)


# ---------------------------------------------------------------- relay

def client_address(cli) -> str:
    """The address postfix sees for this test client: the instance network's gateway
    (podman forwards 127.0.0.1 connections through it)."""
    out = subprocess.run(["podman", "network", "inspect", cli.instance, "--format",
                          "{{range .Subnets}}{{.Gateway}} {{end}}"], capture_output=True, text=True, check=True)
    return next(a for a in out.stdout.split() if ":" not in a)


@pytest.fixture
def relay_reset(mx) -> Iterator[None]:
    yield
    mx.run("set-relay-configuration", {"networks": [], "postfix_restricted_sender": False})


def test_no_open_relay_but_allowed_networks_relay_without_auth(mx, relay_reset):
    assert send25(mx, f"{JOHN}@{DOMAIN}", EXTERNAL, "open relay attempt")[0] == 554
    code, text = send25(mx, EXTERNAL, "other@example.com", "open relay attempt")
    assert code == 554 and "Relay access denied" in text

    gateway = client_address(mx)
    network = ".".join(gateway.split(".")[:3]) + ".0/24"
    for allowed in ([gateway], [network, "2001:db8::/32"]):
        mx.run("set-relay-configuration", {"networks": allowed})
        assert mx.run("get-relay-configuration")["networks"] == allowed
        external = f"scan-{token()}@example.net"
        assert send25(mx, f"{JOHN}@{DOMAIN}", external, "scanned document") == (250, ""), allowed
        wait_relayed(mx, external)

    mx.run("set-relay-configuration", {"networks": []})
    code, text = send25(mx, f"{JOHN}@{DOMAIN}", EXTERNAL, "after removal")
    assert code == 554 and "Relay access denied" in text


def test_relay_networks_are_validated_naming_the_item(mx):
    for bad, error in (("0.0.0.0/0", "networks_open_relay"), ("::/0", "networks_open_relay")):
        r = mx.run("set-relay-configuration", {"networks": ["192.0.2.1", bad]}, expect=10)
        assert json.loads(r.stdout)[0]["field"] == "networks.1"
        assert json.loads(r.stdout)[0]["error"] == error
    r = mx.run("set-relay-configuration", {"networks": ["not-an-ip"]}, expect=10)
    assert json.loads(r.stdout)[0]["field"].startswith("networks")
    mx.run("set-relay-configuration", {"networks": ["2001:DB8:0::1", "192.0.2.1", "192.0.2.1/32", "10.1.2.3/24"]})
    try:  # listed as sent (NS8); postfix gets canonical networks (host bits cleared, as NS8 accepts them)
        assert mx.run("get-relay-configuration")["networks"] == ["2001:DB8:0::1", "192.0.2.1", "192.0.2.1/32",
                                                                 "10.1.2.3/24"]
        mynetworks = mx.exec("postfix", "postconf", "-h", "mynetworks")
        assert "[2001:db8::1]" in mynetworks and "10.1.2.0/24" in mynetworks
    finally:
        mx.run("set-relay-configuration", {"networks": []})


def test_submission_without_login_takes_local_mail_only(mx, relay_reset):
    """587 (after STARTTLS) and 465 without AUTH act as port 25 (NS8's scenario "sender is
    unrestricted without SASL login"): mail for a local user is delivered, relaying and
    internal addresses are refused; the sender/login match does not concern them."""
    mx.run("set-relay-configuration", {"postfix_restricted_sender": True})
    mx.run("alter-address", {"local": "tpinfo", "atype": "domain", "domain": DOMAIN, "internal": True})
    try:
        for port in (587, 465):
            if port == 465:
                s: smtplib.SMTP = smtplib.SMTP_SSL(HOST, mx.port(465), context=insecure_tls(), timeout=20)
            else:
                s = smtplib.SMTP(HOST, mx.port(587), timeout=20)
                s.starttls(context=insecure_tls())
            tag = token()
            with s:
                s.ehlo("client.example.net")
                assert s.mail(EXTERNAL)[0] == 250
                assert s.rcpt(f"{JOHN}@{DOMAIN}")[0] == 250
                code, text = s.rcpt("other@example.com")
                assert (code, b"Relay access denied" in text) == (554, True), (port, code, text)
                code, text = s.rcpt(f"tpinfo@{DOMAIN}")
                assert (code, b"access denied" in text) == (554, True), (port, code, text)
                assert s.data(message(EXTERNAL, f"{JOHN}@{DOMAIN}", f"no login {tag}").as_bytes())[0] == 250
            wait_delivered(mx, JOHN, tag)
    finally:
        mx.run("alter-address", {"local": "tpinfo", "atype": "domain", "domain": DOMAIN, "internal": False})


def test_sender_login_match_on_and_off(mx, relay_reset):
    to = f"{MARY}@{DOMAIN}"
    assert mx.run("get-relay-configuration")["postfix_restricted_sender"] is False
    # Off (the default): any sender address.
    assert submit(mx, 587, JOHN, f"{MARY}@{DOMAIN}", to) == (250, "")
    assert submit(mx, 587, JOHN, f"{JOHN}@{DOMAIN}", to) == (250, "")

    mx.run("set-relay-configuration", {"postfix_restricted_sender": True})
    assert mx.run("get-relay-configuration") == {"networks": [], "postfix_restricted_sender": True}
    for port in (587, 465):
        code, text = submit(mx, port, JOHN, f"{MARY}@{DOMAIN}", to)
        assert code == 553 and "5.7.1" in text, (port, code, text)
        code, text = submit(mx, port, JOHN, "john@elsewhere.example.com", to)
        assert code == 553 and "5.7.1" in text, (port, code, text)
        assert submit(mx, port, JOHN, f"{JOHN}@{DOMAIN}", to) == (250, "")
    # An explicit address of john's; a group address is owned by its members (NS8's
    # scenario 00__sender_restrictions): mary may send as her group, not as john's alone.
    assert submit(mx, 587, JOHN, f"tpinfo@{DOMAIN}", to) == (250, "")
    assert submit(mx, 587, MARY, f"tpinfo@{DOMAIN}", to)[0] == 553
    mx.run("alter-domain", {"domain": DOMAIN, "addgroups": True})
    mx.run("add-group", {"group": "tpjohns", "members": [JOHN]})
    try:
        assert submit(mx, 587, MARY, f"{GROUP}@{DOMAIN}", to) == (250, "")
        assert submit(mx, 587, JOHN, f"tpjohns@{DOMAIN}", to) == (250, "")
        code, text = submit(mx, 587, MARY, f"tpjohns@{DOMAIN}", to)
        assert (code, text) == (553, f"5.7.1 <tpjohns@{DOMAIN}>: Sender address rejected: not owned by user {MARY}")
    finally:
        mx.run("remove-group", {"group": "tpjohns"})
    # Port 25 is not concerned: other MTAs send as anyone to local users.
    tag = token()
    assert send25(mx, f"{MARY}@{DOMAIN}", f"{JOHN}@{DOMAIN}", f"inbound {tag}") == (250, "")
    wait_delivered(mx, JOHN, tag)

    mx.run("set-relay-configuration", {"postfix_restricted_sender": False})
    assert submit(mx, 587, JOHN, f"{MARY}@{DOMAIN}", to) == (250, "")


# ---------------------------------------------------------------- testssl.sh

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
WEAK_CATEGORIES = ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
                   "cipherlist_3DES_IDEA", "cipherlist_AVERAGE")


@pytest.fixture(scope="module")
def testssl_reports(mx, tmp_path_factory) -> dict[int, list[dict]]:
    """testssl.sh --protocols --std (cipher categories) on 993 and 465, run side by side."""
    if TESTSSL is None:
        pytest.skip("testssl.sh is not installed (Debian package testssl.sh)")
    out = tmp_path_factory.mktemp("testssl")
    runs = {}
    for port in (993, 465):
        cmd = [TESTSSL, "--quiet", "--fast", "--warnings", "batch", "--color", "0", "--protocols", "--std",
               "--jsonfile", str(out / f"{port}.json"), f"{HOST}:{mx.port(port)}"]
        runs[port] = subprocess.Popen(cmd, stdout=open(out / f"{port}.txt", "w"), stderr=subprocess.STDOUT)
    reports = {}
    for port, proc in runs.items():
        proc.wait(timeout=180)
        reports[port] = json.loads((out / f"{port}.json").read_text())
        summary = [f"{e['id']}: {e['finding']} ({e['severity']})" for e in reports[port]
                   if e["id"].startswith(("SSL", "TLS", "cipherlist_"))]
        print(f"testssl {port}:\n  " + "\n  ".join(summary))
    return reports


@pytest.mark.parametrize("port", [993, 465])
def test_testssl_no_protocol_below_tls12_and_no_weak_cipher(testssl_reports, port):
    findings = {e["id"]: e for e in testssl_reports[port]}
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert findings[old]["finding"] == "not offered", findings[old]
    assert findings["TLS1_2"]["finding"] == "offered"
    assert findings["TLS1_3"]["finding"].startswith("offered")
    for category in WEAK_CATEGORIES:
        assert findings[category]["finding"] == "not offered", findings[category]
    assert findings["cipherlist_STRONG"]["finding"] == "offered"
    bad = [e for e in testssl_reports[port] if e["severity"] in ("MEDIUM", "HIGH", "CRITICAL")]
    assert bad == [], bad

