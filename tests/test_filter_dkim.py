"""DKIM signing and the Filter page on real daemons.

DKIM: mail submitted on 587 by an authenticated user of a signing domain carries a
signature that verifies (dkimpy) against the TXT record get-domain-dkim shows; mail that
arrives on 25 is never signed. Filter: the spam thresholds mark and refuse real messages,
antispam and antivirus can be turned off, and bypass rules let a refused sender through.
(The default antivirus and headers are covered by test_filter_basics.py.)
"""

from __future__ import annotations

import email
import email.utils
import imaplib
import os
import smtplib
import socket
import stat
import time
import uuid
from email.message import EmailMessage

import dkim
import pytest
from protocol import HOST, insecure_tls

pytestmark = pytest.mark.containers

USER, PASSWORD = "dkimuser", "Dkim-Pass-4711"
DOMAIN = "example.org"
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
DEFAULTS = {
    "antispam": {"enabled": True, "spam_flag_threshold": 6, "deny_message_threshold": 15,
                 "greylist": {"enabled": False, "threshold": 4, "delay": 300}, "rbl": {"enabled": True, "lists": []},
                 "bayes": {"min_learns": 20, "autolearn": False}, "dns_resolver": "",
                 "sender_rate_limit": {"enabled": True, "burst": 200, "messages_per_hour": 200}},
    "antivirus": {"enabled": True, "clamav_official_sigs": False, "third_party_sigs_rating": "medium",
                  "mirror_url": "", "infected_mail": "reject"},
}


@pytest.fixture(scope="module")
def mailbox(mail):
    """A user of example.org; the filter settings and bypass rules are put back afterwards."""
    mail.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": DOMAIN})
    mail.run("add-user", {"user": USER, "password": PASSWORD, "display_name": "Dkim User"})
    yield f"{USER}@{DOMAIN}"
    for rule in mail.run("list-bypass-rules")["bypass_rules"]:
        mail.run("remove-bypass-rule", rule)
    mail.run("set-filter-configuration", DEFAULTS)
    mail.run("set-domain-dkim", {"domain": DOMAIN, "enabled": False})


def message(sender: str, to: str, subject: str, dated: bool = True) -> EmailMessage:
    """A plain message; without a Date header rspamd scores it about 0.9 (MISSING_DATE)."""
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    if dated:
        m["Date"] = email.utils.formatdate()
    m["Message-ID"] = email.utils.make_msgid(domain=sender.split("@")[1])
    m.set_content("Hello,\nthe minutes of today's meeting are attached to the wiki page.\n")
    return m


def submit(mail, m: EmailMessage) -> None:
    """Send on 587 after STARTTLS and AUTH as the test user."""
    with smtplib.SMTP(HOST, mail.port(587), timeout=30) as s:
        s.ehlo("client.example.org")
        s.starttls(context=insecure_tls())
        s.ehlo("client.example.org")
        s.login(USER, PASSWORD)
        s.send_message(m)


def relay(mail, m: EmailMessage) -> None:
    """Send on 25, as another mail server would."""
    with smtplib.SMTP(HOST, mail.port(25), timeout=30) as s:
        s.ehlo("mx.example.net")
        s.send_message(m)


def fetch(subject: str, mail, timeout: float = 20) -> tuple[str, bytes] | None:
    """(mailbox, whole message) of the message with `subject`, in INBOX or Junk."""
    deadline = time.monotonic() + timeout
    with imaplib.IMAP4(HOST, mail.port(143), timeout=10) as imap:
        imap.starttls(insecure_tls())
        imap.login(USER, PASSWORD)
        while True:
            for box in ("INBOX", "Junk"):
                if imap.select(box, readonly=True)[0] != "OK":
                    continue
                _, found = imap.search(None, "SUBJECT", f'"{subject}"')
                if found[0]:
                    _, data = imap.fetch(found[0].split()[-1], "(BODY.PEEK[])")
                    return box, data[0][1]
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)


def subject(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def txt_of(mail) -> bytes:
    return mail.run("get-domain-dkim", {"domain": DOMAIN})["dkimRecordData"].encode()


def verifies(raw: bytes, txt: bytes) -> bool:
    """dkimpy's verdict, the DNS answer for default._domainkey being `txt`."""
    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return txt if name.rstrip(".") == "default._domainkey.example.org" else None
    return dkim.verify(raw, dnsfunc=dnsfunc)


# DKIM
def test_dkim_signs_submitted_mail_with_the_published_key(mail, mailbox):
    before = mail.run("get-domain-dkim", {"domain": DOMAIN})
    assert before["enabled"] is False and set(before) <= {"enabled", "dkimRecordData", "dkimFullRawRecord"}  # NS8
    out = mail.run("set-domain-dkim", {"domain": DOMAIN, "enabled": True})
    assert out["enabled"] is True and out["dkimRecordData"].startswith("v=DKIM1; k=rsa; p=")
    assert out["dkimFullRawRecord"].startswith("default._domainkey.example.org. IN TXT (")
    listed = {d["domain"]: d["dkim"] for d in mail.run("list-domains")}
    assert listed[DOMAIN] == {"enabled": True, "selector": "default"}
    # The private key is a secret file, never in any output.
    key = mail.state_dir / mail.instance / "secrets" / "dkim" / f"{DOMAIN}.default.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert "PRIVATE" not in mail("run", "get-domain-dkim", "--data", f'{{"domain": "{DOMAIN}"}}').stdout

    title = subject("signed")
    submit(mail, message(mailbox, mailbox, title))
    found = fetch(title, mail)
    assert found is not None, "submitted message not delivered"
    raw = found[1]
    signature = email.message_from_bytes(raw)["DKIM-Signature"]
    assert signature and "d=example.org" in signature and "s=default" in signature
    assert verifies(raw, txt_of(mail))
    assert not verifies(raw.replace(b"minutes", b"MINUTES"), txt_of(mail))  # the check is real
    again = mail.run("set-domain-dkim", {"domain": DOMAIN, "enabled": True})["dkimRecordData"]
    assert again.encode() == txt_of(mail)  # enabling again keeps the same key


def test_mail_received_on_port_25_is_not_signed(mail, mailbox):
    title = subject("inbound")
    relay(mail, message(mailbox, mailbox, title))
    found = fetch(title, mail)
    assert found is not None
    assert "DKIM-Signature" not in email.message_from_bytes(found[1])


def test_disabling_dkim_stops_signing_and_keeps_the_key(mail, mailbox):
    txt = txt_of(mail)
    out = mail.run("set-domain-dkim", {"domain": DOMAIN, "enabled": False})
    assert out["enabled"] is False and out["dkimRecordData"].encode() == txt
    assert {d["domain"]: d["dkim"]["enabled"] for d in mail.run("list-domains")}[DOMAIN] is False
    title = subject("unsigned")
    submit(mail, message(mailbox, mailbox, title))
    found = fetch(title, mail)
    assert found is not None
    assert "DKIM-Signature" not in email.message_from_bytes(found[1])
    mail.run("set-domain-dkim", {"domain": DOMAIN, "enabled": True})
    assert txt_of(mail) == txt


def test_dkim_of_an_unknown_domain_is_refused(mail, mailbox):
    for action, data in (("get-domain-dkim", {"domain": "nosuch.example.org"}),
                         ("set-domain-dkim", {"domain": "nosuch.example.org", "enabled": True})):
        r = mail.run(action, data, expect=10)
        assert r.json()[0]["field"] == "domain" and r.json()[0]["error"] == "domain_not_found"


# Filter
def settings_of(antispam: dict) -> dict:
    """The antispam settings of get-filter-configuration, without its live status fields."""
    out = {k: v for k, v in antispam.items() if k not in ("rspamd_url", "dns", "prefix_email_subject")}
    out["bayes"] = {k: v for k, v in out["bayes"].items() if k != "learned"}
    return out


def test_filter_configuration_reports_defaults_ui_and_clamav_memory(mail, mailbox):
    out = mail.run("get-filter-configuration")
    assert settings_of(out["antispam"]) == DEFAULTS["antispam"]
    assert {k: v for k, v in out["antivirus"].items()
            if k not in ("memory_info", "databases", "signature_updates")} == DEFAULTS["antivirus"]
    assert out["bypass_rules"] == 0
    # Rspamd's UI is reached through the admin UI (tests/test_web_api.py opens it there);
    # its controller port is not published on the host.
    assert out["antispam"]["rspamd_url"] == f"https://{HOST}:{mail.port(9443)}/rspamd/"
    with pytest.raises(OSError):
        socket.create_connection((HOST, mail.port(11334)), timeout=5).close()
    memory = out["antivirus"]["memory_info"]
    assert memory["used"] > 0 and memory["installed"] > memory["used"] and memory["recommended"] > 0


def test_spam_flag_threshold_marks_a_message_as_spam(mail, mailbox):
    mail.run("set-filter-configuration", {"antispam": {"enabled": True, "spam_flag_threshold": 0.1}})
    title = subject("flagged")
    relay(mail, message("alice@example.net", mailbox, title, dated=False))
    found = fetch(title, mail)
    assert found is not None
    headers = email.message_from_bytes(found[1])
    assert headers["X-Spam"] == "Yes" and headers["X-Spam-Status"].startswith("Yes")
    assert found[0] == "Junk"  # the spam folder of set-mailbox-settings


def test_deny_threshold_rejects_at_data_and_a_sender_bypass_lets_it_through(mail, mailbox):
    mail.run("set-filter-configuration", {"antispam": {"enabled": True, "spam_flag_threshold": 0.2,
                                                       "deny_message_threshold": 0.5}})
    assert mail.run("get-filter-configuration")["antispam"]["deny_message_threshold"] == 0.5
    with pytest.raises(smtplib.SMTPDataError) as refused:
        relay(mail, message("alice@example.net", mailbox, subject("denied"), dated=False))
    assert refused.value.smtp_code == 554

    rule = {"type": "email", "direction": "from", "value": "Alice@Example.net"}
    mail.run("add-bypass-rule", rule)
    assert mail.run("list-bypass-rules")["bypass_rules"] == [  # kept as sent (NS8), matched in any case
        {"type": "email", "direction": "from", "value": "Alice@Example.net"}]
    assert mail.run("add-bypass-rule", rule, expect=10).json()[0]["error"] == "bypass_rule_already_exists"
    title = subject("bypassed")
    relay(mail, message("alice@example.net", mailbox, title, dated=False))
    found = fetch(title, mail)
    assert found is not None and found[0] == "INBOX"
    # Another sender of the same domain is still refused; a domain rule covers it.
    with pytest.raises(smtplib.SMTPDataError):
        relay(mail, message("carol@example.net", mailbox, subject("denied"), dated=False))
    mail.run("add-bypass-rule", {"type": "domain", "direction": "from", "value": "example.net"})
    title = subject("domain bypass")
    relay(mail, message("carol@example.net", mailbox, title, dated=False))
    assert fetch(title, mail) is not None

    for r in mail.run("list-bypass-rules")["bypass_rules"]:
        mail.run("remove-bypass-rule", r)
    assert mail.run("remove-bypass-rule", rule, expect=10).json()[0]["error"] == "bypass_rule_not_found"
    with pytest.raises(smtplib.SMTPDataError):
        relay(mail, message("alice@example.net", mailbox, subject("denied again"), dated=False))


def test_client_ip_and_recipient_bypass_rules(mail, mailbox):
    """Scanned by rspamd directly, so that the client address can be chosen."""
    mail.run("set-filter-configuration", {"antispam": {"enabled": True, "spam_flag_threshold": 0.2,
                                                       "deny_message_threshold": 0.5}})
    raw = message("alice@example.net", "someone@example.com", "scan", dated=False).as_string()
    mail.exec("rspamd", "sh", "-c", f"cat > /tmp/bypass.eml <<'EOF'\n{raw}\nEOF")

    def action(ip: str, rcpt: str = "someone@example.com") -> str:
        out = mail.exec("rspamd", "rspamc", "-h", "127.0.0.1:11333", "-i", ip, "-F", "alice@example.net",
                        "-r", rcpt, "symbols", "/tmp/bypass.eml")
        return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("Action:"))

    assert action("198.51.100.7") == "reject"
    mail.run("add-bypass-rule", {"type": "cidr", "direction": "from", "value": "198.51.100.0/24"})
    mail.run("add-bypass-rule", {"type": "email", "direction": "to", "value": "boss@example.com"})
    assert mail.run("get-filter-configuration")["bypass_rules"] == 2
    assert action("198.51.100.7") == "no action"
    assert action("203.0.113.9") == "reject"
    assert action("203.0.113.9", "boss@example.com") == "no action"
    for r in mail.run("list-bypass-rules")["bypass_rules"]:
        mail.run("remove-bypass-rule", r)
    assert action("198.51.100.7") == "reject"


def test_antispam_off_accepts_what_the_thresholds_would_refuse(mail, mailbox):
    mail.run("set-filter-configuration", {"antispam": {"enabled": False, "spam_flag_threshold": 0.2,
                                                       "deny_message_threshold": 0.5}})
    title = subject("no antispam")
    relay(mail, message("alice@example.net", mailbox, title, dated=False))
    found = fetch(title, mail)
    assert found is not None and found[0] == "INBOX"
    assert email.message_from_bytes(found[1])["X-Spam"] is None
    mail.run("set-filter-configuration", {"antispam": DEFAULTS["antispam"]})


def test_antivirus_off_lets_eicar_through_and_on_refuses_it(mail, mailbox):
    def infected(title: str) -> EmailMessage:
        m = message("alice@example.net", mailbox, title)
        m.add_attachment(EICAR, maintype="application", subtype="octet-stream", filename="eicar.txt")
        return m

    mail.run("set-filter-configuration", {"antivirus": {"enabled": False}})
    assert mail.run("get-filter-configuration")["antivirus"]["enabled"] is False
    title = subject("virus passes")
    relay(mail, infected(title))
    assert fetch(title, mail) is not None
    mail.run("set-filter-configuration", {"antivirus": {"enabled": True}})
    with pytest.raises(smtplib.SMTPDataError) as refused:
        relay(mail, infected(subject("virus refused")))
    assert refused.value.smtp_code == 554 and b"virus found" in refused.value.smtp_error


def test_inconsistent_thresholds_are_refused_and_change_nothing(mail, mailbox):
    before = mail.run("get-filter-configuration")["antispam"]
    r = mail.run("set-filter-configuration", {"antispam": {"enabled": True, "spam_flag_threshold": 8,
                                                           "deny_message_threshold": 7}}, expect=10)
    assert r.json()[0]["field"] == "antispam.deny_message_threshold"
    r = mail.run("set-filter-configuration", {"antispam": {"enabled": True, "greylist": {"enabled": True,
                                                                                         "threshold": 9}}}, expect=10)
    assert r.json()[0]["field"] == "antispam.greylist.threshold"
    assert settings_of(mail.run("get-filter-configuration")["antispam"]) == settings_of(before)
