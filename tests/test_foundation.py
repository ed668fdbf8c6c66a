"""A running instance: every daemon healthy, every public port answers as it should."""

from __future__ import annotations

import imaplib
import poplib
import smtplib

import pytest
from conftest import TEST_OFFSET_DELTA
from protocol import HOST, insecure_tls, sieve_greeting

pytestmark = pytest.mark.containers


def test_status_json_lists_every_daemon_healthy(mail):
    r = mail("status", "--json")
    assert r.code == 0, r.stderr
    rows = r.json()
    assert {row["daemon"] for row in rows} == {"redis", "openldap", "clamav", "rspamd", "dovecot", "postfix"}
    for row in rows:
        assert row["name"] == f"{mail.instance}-{row['daemon']}"
        assert row["state"] == "running"
        assert row["health"] == "healthy", row


@pytest.mark.parametrize("port", [25, 587])
def test_smtp_banner_plain(mail, port):
    with smtplib.SMTP(HOST, mail.port(port), timeout=10) as s:
        code, _ = s.ehlo("client.example.org")
        assert code == 250
        assert s.has_extn("starttls")


def test_smtps_implicit_tls_banner(mail):
    with smtplib.SMTP_SSL(HOST, mail.port(465), context=insecure_tls(), timeout=10) as s:
        assert s.ehlo("client.example.org")[0] == 250
        assert s.has_extn("auth")


def test_imap_and_imaps_greet(mail):
    with imaplib.IMAP4(HOST, mail.port(143), timeout=10) as m:
        assert "STARTTLS" in m.capabilities
    with imaplib.IMAP4_SSL(HOST, mail.port(993), ssl_context=insecure_tls(), timeout=10) as m:
        assert "IMAP4REV1" in m.capabilities


def test_pop3_and_pop3s_greet(mail):
    p = poplib.POP3(HOST, mail.port(110), timeout=10)
    assert p.getwelcome().startswith(b"+OK")
    p.quit()
    p = poplib.POP3_SSL(HOST, mail.port(995), context=insecure_tls(), timeout=10)
    assert p.getwelcome().startswith(b"+OK")
    p.quit()


def test_managesieve_greets(mail):
    greeting = sieve_greeting(mail.port(4190))
    assert '"IMPLEMENTATION"' in greeting and '"STARTTLS"' in greeting


def test_second_instance_on_same_ports_is_refused(mail, fresh_instance):
    """The seed warns of TCP port conflicts: a second instance must fail before starting."""
    # the same ports as `mail` (fresh_instance adds the run's offset delta again)
    other = fresh_instance("ts2", mail.port_offset - TEST_OFFSET_DELTA, up=False)
    r = other("up", timeout=120)
    assert r.code == 3, r.stderr
    assert f"127.0.0.1:{mail.port(25)} (smtp)" in r.stderr and f"127.0.0.1:{mail.port(993)} (imaps)" in r.stderr
    assert f"mail instance '{mail.instance}'" in r.stderr
    assert other("status", "--json").json()[0]["state"] == "absent"
    # the first instance is untouched
    assert all(row["health"] == "healthy" for row in mail("status", "--json").json())
