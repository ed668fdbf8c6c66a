"""Greylisting and DNS block lists, live: real SMTP through postfix and rspamd, and a DNS
server started by the test (tests/dnsserver.py) as the filter's resolver.

Also shows offline mode as a reported state that ends by itself: with a resolver that does
not answer, the DNS checks are reported inactive; once it answers, rspamd's periodic probe
turns them back on without any action.
"""

from __future__ import annotations

import email
import ipaddress
import os
import smtplib
import time
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from dnsserver import DnsServer
from protocol import imaps, network_gateway, send, token, wait_for

pytestmark = pytest.mark.containers

DOMAIN = "example.org"
USER, PASSWORD = "fllive", "Live-Pass-4711"
# Extra ports of this file, below 32768 (UDP for the DNS server).
DNS_PORT = int(os.environ.get("MAIL_TEST_FILTER_PORT", "3510")) + 43
ZONE = "bl.fltest.example"


@pytest.fixture(scope="module")
def mx(mail):
    mail.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": DOMAIN})
    mail.run("add-user", {"user": USER, "password": PASSWORD, "display_name": "Live"})
    before = mail.run("get-filter-configuration")["antispam"]
    yield mail
    mail.run("set-filter-configuration", {"antispam": {
        k: before[k] for k in ("enabled", "spam_flag_threshold", "deny_message_threshold", "greylist", "rbl",
                               "dns_resolver")}})
    mail.run("remove-user", {"user": USER}, expect=None)


@pytest.fixture(scope="module")
def gateway(mx) -> str:
    """The host's address on the instance network: the SMTP client's address as rspamd sees
    it, and where the containers reach the test's servers."""
    return network_gateway(mx.instance)


def message(subject: str, dated: bool = True) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "sender@example.net", f"{USER}@{DOMAIN}", subject
    m["Message-ID"] = make_msgid(domain="client.example.net")
    if dated:
        m["Date"] = email.utils.formatdate()
    m.set_content("Hello,\nthe report is attached to the next message.\n")
    return m


def delivered(mx, subject: str) -> bytes:
    def look():
        with imaps(mx, USER, PASSWORD) as imap:
            for folder in ("INBOX", "Junk"):
                imap.select(folder, readonly=True)
                _, found = imap.search(None, "SUBJECT", f'"{subject}"')
                if found[0]:
                    return imap.fetch(found[0].split()[-1], "(BODY.PEEK[HEADER])")[1][0][1]
        return None
    return wait_for(look, f"delivery of {subject!r}")


def test_greylisting_defers_a_new_sender_then_accepts_the_retry_after_the_delay(mx):
    # Undated mail scores about 1 (MISSING_DATE): above this greylist threshold.
    mx.run("set-filter-configuration", {"antispam": {"enabled": True, "spam_flag_threshold": 6,
                                                     "deny_message_threshold": 15,
                                                     "greylist": {"enabled": True, "threshold": 0.5, "delay": 5}}})
    assert mx.run("get-filter-configuration")["antispam"]["greylist"] == {"enabled": True, "threshold": 0.5,
                                                                          "delay": 5}
    m = message(f"greylisted {token()}", dated=False)
    with pytest.raises(smtplib.SMTPDataError) as first:
        send(mx, m)
    assert first.value.smtp_code == 451 and first.value.smtp_error.startswith(b"4.7.1"), first.value
    with pytest.raises(smtplib.SMTPDataError) as early:  # a retry before the delay: still deferred
        send(mx, m)
    assert early.value.smtp_code == 451
    time.sleep(6)
    send(mx, m)  # the retry after the delay is accepted
    assert delivered(mx, m["Subject"])
    # Mail below the threshold is never greylisted.
    clean = message(f"not greylisted {token()}")
    send(mx, clean)
    assert delivered(mx, clean["Subject"])


@pytest.fixture
def dns_server(gateway):
    server = DnsServer(gateway, DNS_PORT)
    yield server
    server.stop()


def dns_state(mx) -> dict:
    return mx.run("get-filter-configuration")["antispam"]["dns"]


def test_dns_checks_come_back_by_themselves_and_a_listed_client_is_scored(mx, gateway, dns_server):
    # The resolver does not answer yet: offline, and the block lists are reported inactive.
    mx.run("set-filter-configuration", {"antispam": {
        "enabled": True, "spam_flag_threshold": 40, "deny_message_threshold": 50,
        "greylist": {"enabled": False}, "rbl": {"enabled": True, "lists": [ZONE]},
        "dns_resolver": f"{gateway}:{DNS_PORT}"}})
    state = dns_state(mx)
    assert state["online"] is False and "rbl" in state["inactive_checks"] and state["reason"], state

    # It starts answering: within the 30 s probe interval the checks are on again, no action run.
    dns_server.records[("maps.rspamd.com", "A")] = "192.0.2.1"
    dns_server.start()
    state = wait_for(lambda: (s := dns_state(mx))["online"] and s, "DNS checks back on", timeout=75)
    assert state["inactive_checks"] == [] and state["reason"] == ""

    # The SMTP client's address (the gateway, as rspamd sees it) listed in the test zone.
    listed_name = f"{ipaddress.ip_address(gateway).reverse_pointer.removesuffix('.in-addr.arpa')}.{ZONE}"
    dns_server.records[(listed_name, "A")] = "127.0.0.2"
    listed = message(f"listed {token()}")
    send(mx, listed)
    result = email.message_from_bytes(delivered(mx, listed["Subject"]))["X-Spamd-Result"]
    assert "MAILCTL_RBL_1(4.00)" in result, result
    assert (listed_name, "A") in dns_server.queries

    # Delisted: the same client's next message is not scored by the list.
    del dns_server.records[(listed_name, "A")]
    unlisted = message(f"unlisted {token()}")
    send(mx, unlisted)
    result = email.message_from_bytes(delivered(mx, unlisted["Subject"]))["X-Spamd-Result"]
    assert "MAILCTL_RBL" not in result, result
