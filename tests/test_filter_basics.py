"""The rspamd filter on real SMTP: viruses are refused, clean mail gets rspamd's headers,
and an offline host scans fast without scoring mail as spam for want of DNS."""

from __future__ import annotations

import email
import email.utils
import imaplib
import smtplib
import subprocess
import time
import uuid
from email.message import EmailMessage

import pytest
from protocol import HOST, insecure_tls, send

pytestmark = pytest.mark.containers

USER, PASSWORD = "filterbob", "Filter-Pass-4711"
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


@pytest.fixture(scope="module")
def recipient(mail) -> str:
    """A user with a mailbox in example.org."""
    mail.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local",
                                  "mail_domain": "example.org"})
    mail.run("add-user", {"user": USER, "password": PASSWORD, "display_name": "Filter Bob"})
    return f"{USER}@example.org"


def message(to: str, subject: str) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "alice@example.net"
    m["To"] = to
    m["Subject"] = subject
    m["Date"] = email.utils.formatdate()
    m["Message-ID"] = email.utils.make_msgid(domain="example.net")
    m.set_content("Hello,\nthe minutes of today's meeting are at http://www.example.com/minutes\n")
    return m


def find(mail, subject: str, timeout: float = 20) -> bytes | None:
    """The header of the INBOX message with `subject`, polled over IMAP (STARTTLS)."""
    deadline = time.monotonic() + timeout
    with imaplib.IMAP4(HOST, mail.port(143), timeout=10) as imap:
        imap.starttls(insecure_tls())
        imap.login(USER, PASSWORD)
        while True:
            imap.select("INBOX", readonly=True)
            _, found = imap.search(None, "SUBJECT", f'"{subject}"')
            if found[0]:
                _, data = imap.fetch(found[0].split()[-1], "(BODY.PEEK[HEADER])")
                return data[0][1]
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)


def test_clean_message_is_delivered_with_rspamd_headers(mail, recipient):
    subject = f"clean {uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    send(mail, message(recipient, subject))
    header = find(mail, subject)
    elapsed = time.monotonic() - started
    assert header is not None, "clean message not delivered"
    parsed = email.message_from_bytes(header)
    assert parsed["X-Spam-Status"].startswith("No, score="), parsed["X-Spam-Status"]
    assert parsed["X-Rspamd-Action"] == "no action"
    assert "X-Spamd-Result" in parsed
    # Offline DNS must not stall the filter (rspamd's defaults wait 6 s per lookup).
    assert elapsed < 5, f"delivery took {elapsed:.1f} s"


def test_eicar_is_refused_at_smtp_and_logged(mail, recipient):
    subject = f"virus {uuid.uuid4().hex[:8]}"
    m = message(recipient, subject)
    m.add_attachment(EICAR, maintype="application", subtype="octet-stream", filename="eicar.com")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(mail, m)
    assert refused.value.smtp_code == 554
    assert b"virus found" in refused.value.smtp_error
    assert b"EICAR" in refused.value.smtp_error  # the local signature images/clamav/signatures
    logs = subprocess.run(["podman", "logs", f"{mail.instance}-postfix"], capture_output=True, text=True)
    assert any("milter-reject" in line and "virus found" in line
               for line in (logs.stdout + logs.stderr).splitlines())
    # A clean message sent after it arrives; the infected one never does.
    marker = f"after virus {uuid.uuid4().hex[:8]}"
    send(mail, message(recipient, marker))
    assert find(mail, marker) is not None
    assert find(mail, subject, timeout=0) is None


def rspamd_is_offline(mail) -> bool:
    return "offline" in subprocess.run(["podman", "logs", f"{mail.instance}-rspamd"],
                                       capture_output=True, text=True).stdout


def test_offline_scan_of_external_mail_is_fast_and_not_spam(mail, recipient):
    """Mail from an Internet address, scanned on a host without DNS: no stalls, no penalty."""
    if not rspamd_is_offline(mail):
        pytest.skip("rspamd found the Internet: offline mode not in use")
    raw = message(recipient, "external").as_string()
    mail.exec("rspamd", "sh", "-c", f"cat > /tmp/external.eml <<'EOF'\n{raw}\nEOF")
    out = mail.exec("rspamd", "rspamc", "-h", "127.0.0.1:11333", "-i", "198.51.100.7",
                    "--helo", "mx.example.net", "--hostname", "unknown", "-F", "alice@example.net",
                    "-r", recipient, "symbols", "/tmp/external.eml")
    assert "Action: no action" in out, out
    assert "HFILTER_HOSTNAME_UNKNOWN" not in out and "FUZZY" not in out
    seconds = float(out.split("(", 1)[1].split(" seconds", 1)[0])
    assert seconds < 1, out


def test_mail_is_deferred_not_accepted_unscanned_while_the_filter_is_down(mail, recipient):
    """milter_default_action = tempfail: with rspamd stopped, port 25 answers 451 4.7.1 (the
    sending server retries later); once rspamd is back the same message is accepted and
    delivered with rspamd's headers."""
    subject = f"filter down {uuid.uuid4().hex[:8]}"
    subprocess.run(["podman", "stop", "-t", "2", f"{mail.instance}-rspamd"], check=True, capture_output=True)
    try:
        with smtplib.SMTP(HOST, mail.port(25), timeout=30) as s:
            s.ehlo("client.example.net")
            code, reply = s.mail("alice@example.net")
        assert (code, reply[:5]) == (451, b"4.7.1"), (code, reply)
    finally:
        subprocess.run(["podman", "start", f"{mail.instance}-rspamd"], check=True, capture_output=True)
    deadline = time.monotonic() + 60
    while True:  # rspamd needs a few seconds to listen again
        try:
            send(mail, message(recipient, subject))
            break
        except smtplib.SMTPResponseException as refused:
            assert refused.smtp_code == 451, refused
            assert time.monotonic() < deadline, "rspamd did not come back within 60 s"
            time.sleep(1)
    header = find(mail, subject)
    assert header is not None, "message not delivered after the filter came back"
    assert email.message_from_bytes(header)["X-Rspamd-Action"] == "no action"
