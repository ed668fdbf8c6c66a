"""User mailboxes on a running instance, with real SMTP, IMAP, POP3 and ManageSieve clients.

Quota (custom and default, refused at RCPT and at delivery with 552 5.2.2), disabled
mailboxes, forwards with and without a kept copy, master users, Sieve rules uploaded over
ManageSieve, POP3S, spam filed into Junk with a subject prefix, and the spam retention job.
"""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import pytest
from managesieve import ManageSieve
from protocol import HOST, imaps, insecure_tls, rcpt, token

pytestmark = pytest.mark.containers

DOMAIN = "example.org"
PASSWORD = "Mailb0x-pass"
# This file's users (prefixed so they do not collide with other test files).
QUOTA, DISABLED, FWD, FWDTO, MASTER, SIEVE, POP, JUNK, KEEP = (
    "mbquota", "mbdisabled", "mbfwd", "mbfwdto", "mbmaster", "mbsieve", "mbpop", "mbjunk", "mbkeep")
VACATION, FRIEND = "mbvacation", "mbfriend"
USERS = (QUOTA, DISABLED, FWD, FWDTO, MASTER, SIEVE, POP, JUNK, KEEP, VACATION, FRIEND)
DEFAULTS = {"quota": {"limit": 0}, "sharedseen": {"enabled": True}, "spam_folder": {"enabled": True, "name": "Junk"},
            "spam_prefix": {"enabled": False, "prefix": "***SPAM***"}, "spam_retention": {"value": 15}}
# A message rspamd scores as spam offline (about 9: display name forging another domain,
# no To, Date nor Message-ID, subject in capitals): above the spam flag threshold (6),
# below the reject one (15).
SPAM = ('From: "Support <support@paypal.com>" <promo@example.net>\r\nSubject: {subject}\r\n'
        'Content-Type: text/plain; charset="utf-8"\r\nMIME-Version: 1.0\r\n\r\n'
        'Hello, claim your prize today.\r\n')


def imap(cli, login: str, password: str = PASSWORD):
    """An IMAPS session, with this file's password by default."""
    return imaps(cli, login, password)


@pytest.fixture(scope="module")
def mx(mail):
    """The shared instance, configured, with this file's users; settings restored at the end."""
    mail.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": DOMAIN})
    for user in USERS:
        mail.run("add-user", {"user": user, "password": PASSWORD})
    yield mail
    mail.run("set-mailbox-settings", DEFAULTS, expect=None)
    mail.run("set-master-users", {"master_users": []}, expect=None)
    for user in (QUOTA, DISABLED, FWD, KEEP):  # the mailboxes whose settings the tests change
        mail.run("alter-user-mailbox", {"user": user, "enabled": True, "quota": {"custom": False},
                                        "spam_retention": {"custom": False}, "forward": {"destinations": []}},
                 expect=None)
    for user in USERS:
        mail.run("remove-user", {"user": user}, expect=None)


def message(to: str, subject: str, body: str = "Hello,\nthis is a test message.\n",
            sender: str = "someone@example.net") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"], msg["Message-ID"] = formatdate(localtime=True), make_msgid(domain="client.example.net")
    msg.set_content(body)
    return msg


def send25(cli, to: str, subject: str, body: str = "Hello,\nthis is a test message.\n",
           sender: str = "someone@example.net") -> None:
    """Deliver from outside, MTA to MTA, on port 25."""
    with smtplib.SMTP(HOST, cli.port(25), timeout=30) as s:
        s.ehlo("client.example.net")
        s.send_message(message(to, subject, body, sender), sender, [to])


def send25_undeclared(cli, to: str, subject: str, body: str, sender: str) -> None:
    """Like send25, but MAIL FROM declares no SIZE (so no check can refuse it at RCPT)."""
    with smtplib.SMTP(HOST, cli.port(25), timeout=30) as s:
        s.ehlo("client.example.net")
        assert s.mail(sender)[0] == 250
        assert s.rcpt(to)[0] == 250
        assert s.data(message(to, subject, body, sender).as_bytes())[0] == 250


def send_spam(cli, to: str, subject: str) -> None:
    with smtplib.SMTP(HOST, cli.port(25), timeout=30) as s:
        s.ehlo("client.example.net")
        s.sendmail("promo@example.net", [to], SPAM.format(subject=subject).encode())


def count(conn: imaplib.IMAP4, folder: str, subject: str) -> int:
    typ, _ = conn.select(f'"{folder}"', readonly=True)
    assert typ == "OK", f"no folder {folder}"
    _, found = conn.search(None, "SUBJECT", f'"{subject}"')
    return len(found[0].split())


def wait_for(cli, user: str, subject: str, folder: str = "INBOX", timeout: float = 30) -> bool:
    """Poll the user's folder over IMAP until a message with `subject` is there."""
    deadline = time.monotonic() + timeout
    with imap(cli, user) as conn:
        while True:
            try:
                if count(conn, folder, subject):
                    return True
            except AssertionError:
                pass  # the folder is made by the first delivery into it
            if time.monotonic() > deadline:
                return False
            time.sleep(0.3)


def login_fails(cli, login: str, password: str = PASSWORD) -> bool:
    try:
        with imap(cli, login, password):
            return False
    except imaplib.IMAP4.error:
        return True


def mailboxes(cli) -> dict[str, dict]:
    return {m["user"]: m for m in cli.run("list-user-mailboxes")["user_mailboxes"]}


def append(conn: imaplib.IMAP4, folder: str, subject: str, size: int = 0, days_old: int = 0) -> str:
    """APPEND a message of about `size` bytes, with an INTERNALDATE `days_old` days back."""
    body = ("x" * 76 + "\r\n") * (size // 78) if size else "A small message.\r\n"
    raw = (f"From: someone@example.net\r\nTo: user@{DOMAIN}\r\nSubject: {subject}\r\n"
           f"Date: {formatdate()}\r\n\r\n{body}").encode()
    when = imaplib.Time2Internaldate(time.time() - days_old * 86400)
    typ, data = conn.append(f'"{folder}"', None, when, raw)
    return f"{typ} {data[0].decode(errors='replace') if data and data[0] else ''}"


def test_default_quota_shows_in_list_and_dovecot(mx):
    mx.run("set-mailbox-settings", {"quota": {"limit": 500}})
    try:
        assert mx.run("get-mailbox-settings")["quota"] == {"limit": 500}
        listed = mx.run("list-user-mailboxes")
        assert listed["default_quota"] == {"limit": 500}
        mine = {m["user"]: m for m in listed["user_mailboxes"]}
        assert mine[POP]["quota"]["limit"] == 500 and mine[POP]["quota"]["custom"] is False
        assert mine[POP]["spam_retention"] == {"value": 15, "custom": False}
        assert mine[POP]["enabled"] is True and mine[POP]["forward"] == {"destinations": [], "keepcopy": False}
        assert "storage=500M" in mx.exec("dovecot", "doveadm", "user", POP)
    finally:
        mx.run("set-mailbox-settings", {"quota": {"limit": 0}})
    assert mailboxes(mx)[POP]["quota"]["limit"] == 0


def test_quota_exceeded_refused_at_rcpt_and_delivery(mx):
    mx.run("alter-user-mailbox", {"user": QUOTA, "quota": {"limit": 1, "custom": True}})
    with imap(mx, QUOTA) as conn:
        assert append(conn, "INBOX", "fill one", 700 * 1024).startswith("OK")
        refused = append(conn, "INBOX", "fill two", 700 * 1024)
        assert "OVERQUOTA" in refused.upper() or "quota" in refused.lower(), refused
    quota = mailboxes(mx)[QUOTA]["quota"]
    assert quota["limit"] == 1 and quota["custom"] is True
    assert quota["value"] >= 0 and 60 <= quota["percent"] <= 100, quota

    # At RCPT: dovecot's quota-status service answers for the declared size.
    code, msg = rcpt(mx, f"{QUOTA}@{DOMAIN}", size=500_000)
    assert code == 552 and "5.2.2" in msg, (code, msg)
    # At delivery (no size declared): LMTP refuses, postfix bounces to the (local) sender.
    subject = f"too big {token()}"
    send25_undeclared(mx, f"{QUOTA}@{DOMAIN}", subject, ("y" * 76 + "\n") * 7000, sender=f"{FWDTO}@{DOMAIN}")
    assert wait_for(mx, FWDTO, "Undelivered"), "no bounce for the over-quota delivery"
    with imap(mx, FWDTO) as conn:
        conn.select("INBOX", readonly=True)
        _, found = conn.search(None, "SUBJECT", '"Undelivered"')
        _, data = conn.fetch(found[0].split()[-1], "(BODY.PEEK[TEXT])")
        assert b"5.2.2" in data[0][1], data[0][1][:2000]

    # Back to the default (no quota): mail is accepted again.
    mx.run("alter-user-mailbox", {"user": QUOTA, "quota": {"custom": False}})
    assert mailboxes(mx)[QUOTA]["quota"]["custom"] is False
    assert rcpt(mx, f"{QUOTA}@{DOMAIN}", size=500_000)[0] == 250


def test_usage_counts_mail_delivered_since_the_last_listing(mx):
    """Deliveries do not copy the quota into the usage table (LMTP runs without quota_clone):
    list-user-mailboxes asks dovecot again for the mailboxes that got mail since it last
    listed; an IMAP expunge updates the table as it happens."""
    before = mailboxes(mx)[FRIEND]["quota"]["value"]
    subject = f"big {token()}"
    send25(mx, f"{FRIEND}@{DOMAIN}", subject, ("z" * 76 + "\n") * 40_000)  # about 3 MiB
    assert wait_for(mx, FRIEND, subject)
    after = mailboxes(mx)[FRIEND]["quota"]["value"]
    assert after >= before + 3, (before, after)
    assert mailboxes(mx)[FRIEND]["quota"]["value"] == after  # nothing new: the same figure
    with imap(mx, FRIEND) as conn:
        conn.select("INBOX")
        _, found = conn.search(None, "SUBJECT", f'"{subject}"')
        conn.store(found[0].split()[0], "+FLAGS", "\\Deleted")
        conn.expunge()
    assert mailboxes(mx)[FRIEND]["quota"]["value"] == before


def test_disabled_mailbox_cannot_log_in_nor_receive(mx):
    address = f"{DISABLED}@{DOMAIN}"
    with imap(mx, DISABLED) as session:
        mx.run("set-mailbox-enabled", {"user": DISABLED, "enabled": False})
        with pytest.raises((imaplib.IMAP4.abort, OSError)):  # the open session is closed
            session.noop()
            session.select("INBOX")
    assert mailboxes(mx)[DISABLED]["enabled"] is False
    assert login_fails(mx, DISABLED)
    code, msg = rcpt(mx, address)
    assert code >= 500 and "disabled" in msg.lower(), (code, msg)
    with pytest.raises(poplib.error_proto):
        pop = poplib.POP3_SSL(HOST, mx.port(995), context=insecure_tls(), timeout=15)
        try:
            pop.user(DISABLED)
            pop.pass_(PASSWORD)
        finally:
            pop.close()

    mx.run("set-mailbox-enabled", {"user": DISABLED, "enabled": True})
    assert mailboxes(mx)[DISABLED]["enabled"] is True
    assert rcpt(mx, address)[0] == 250
    subject = f"enabled again {token()}"
    send25(mx, address, subject)
    assert wait_for(mx, DISABLED, subject)


def test_forward_without_and_with_copy(mx):
    source, target = f"{FWD}@{DOMAIN}", {"dtype": "user", "name": FWDTO}
    mx.run("alter-user-mailbox", {"user": FWD, "forward": {"destinations": [target], "keepcopy": False}})
    assert mailboxes(mx)[FWD]["forward"] == {"destinations": [target], "keepcopy": False}
    moved = f"forward only {token()}"
    send25(mx, source, moved)
    assert wait_for(mx, FWDTO, moved)

    mx.run("alter-user-mailbox", {"user": FWD, "forward": {"destinations": [target], "keepcopy": True}})
    copied = f"forward and copy {token()}"
    send25(mx, source, copied)
    assert wait_for(mx, FWDTO, copied)
    assert wait_for(mx, FWD, copied)
    with imap(mx, FWD) as conn:
        assert count(conn, "INBOX", moved) == 0, "forward without keepcopy left a copy"

    mx.run("alter-user-mailbox", {"user": FWD, "forward": {"destinations": []}})
    assert mailboxes(mx)[FWD]["forward"] == {"destinations": [], "keepcopy": False}
    kept = f"no forward {token()}"
    send25(mx, source, kept)
    assert wait_for(mx, FWD, kept)
    with imap(mx, FWDTO) as conn:
        assert count(conn, "INBOX", kept) == 0


def test_alter_user_mailbox_rejects_bad_input(mx):
    r = mx.run("alter-user-mailbox", {"user": "nosuchuser", "quota": {"limit": 5}}, expect=10)
    assert "user" in [e["field"] for e in r.json()]
    r = mx.run("alter-user-mailbox", {"user": FWD, "forward": {"destinations": [{"dtype": "user", "name": FWD}]}},
               expect=10)
    assert r.json()[0]["error"] == "forward_to_itself"
    r = mx.run("set-master-users", {"master_users": ["nosuchuser"]}, expect=10)
    assert r.json()[0]["field"] == "master_users.0"
    r = mx.run("set-mailbox-settings", {"spam_folder": {"enabled": True, "name": "inbox"}}, expect=10)
    assert r.json()[0]["field"] == "spam_folder.name"


def test_master_users(mx):
    subject = f"for the master {token()}"
    send25(mx, f"{SIEVE}@{DOMAIN}", subject)
    assert wait_for(mx, SIEVE, subject)
    assert login_fails(mx, f"{SIEVE}*{MASTER}"), "not a master user yet"

    mx.run("set-master-users", {"master_users": [MASTER]})
    assert mx.run("get-master-users") == {"master_users": [MASTER]}
    with imap(mx, f"{SIEVE}*{MASTER}") as conn:
        assert count(conn, "INBOX", subject) == 1, "the master login did not open the user's mailbox"
    assert login_fails(mx, f"{SIEVE}*{MASTER}", "wrong-password")
    assert login_fails(mx, f"{MASTER}*{POP}"), "a user that is not a master impersonated another"

    # The built-in master credentials: a generated password, not any LDAP user's.
    creds = mx.run("reveal-master-credentials")
    assert creds["separator"] == "*" and creds["password"] != PASSWORD
    with imap(mx, f"{SIEVE}{creds['separator']}{creds['username']}", creds["password"]) as conn:
        assert count(conn, "INBOX", subject) == 1

    mx.run("set-master-users", {"master_users": []})
    assert login_fails(mx, f"{SIEVE}*{MASTER}")


def test_sieve_rule_uploaded_with_managesieve(mx):
    client = ManageSieve(HOST, mx.port(4190))
    try:
        assert "STARTTLS" in client.capabilities
        assert not client.capabilities.get("SASL"), "AUTH must not be offered before STARTTLS"
        client.starttls(insecure_tls())
        assert "PLAIN" in client.capabilities["SASL"].split()
        client.authenticate_plain(SIEVE, PASSWORD)
        client.putscript("reports", 'require ["fileinto", "mailbox"];\n'
                                    'if header :contains "subject" "[report]" {\n'
                                    '  fileinto :create "Reports";\n}\n')
        client.setactive("reports")
        assert any('"reports" ACTIVE' in line for line in client.listscripts())
    finally:
        client.logout()
    filed, other = f"[report] weekly {token()}", f"plain {token()}"
    send25(mx, f"{SIEVE}@{DOMAIN}", filed)
    send25(mx, f"{SIEVE}@{DOMAIN}", other)
    assert wait_for(mx, SIEVE, filed, folder="Reports")
    assert wait_for(mx, SIEVE, other)
    with imap(mx, SIEVE) as conn:
        assert count(conn, "INBOX", filed) == 0


def test_sieve_vacation_answers_and_redirect_sends(mx):
    """Out of office: a vacation script answers mail sent to the user's address (the answer
    From: the user at the primary domain), and a redirect sends a copy on; both leave
    through postfix (dovecot's submission_host)."""
    tag = token()
    client = ManageSieve(HOST, mx.port(4190))
    try:
        client.starttls(insecure_tls())
        client.authenticate_plain(VACATION, PASSWORD)
        client.putscript("away", 'require ["vacation", "copy"];\n'
                                 f'redirect :copy "{FRIEND}@{DOMAIN}";\n'
                                 f'vacation :days 1 :subject "Out of office {tag}" "I am away until Monday.";\n')
        client.setactive("away")
    finally:
        client.logout()
    # From outside, as the friend: the friend gets the copy and the answer.
    send25(mx, f"{VACATION}@{DOMAIN}", f"meeting {tag}", sender=f"{FRIEND}@{DOMAIN}")
    assert wait_for(mx, VACATION, f"meeting {tag}")
    assert wait_for(mx, FRIEND, f"meeting {tag}"), "the redirect's copy did not arrive"
    assert wait_for(mx, FRIEND, f"Out of office {tag}"), "no vacation answer"
    with imap(mx, FRIEND) as conn:
        conn.select("INBOX", readonly=True)
        _, found = conn.search(None, "SUBJECT", f'"Out of office {tag}"')
        _, data = conn.fetch(found[0].split()[0], "(BODY.PEEK[HEADER.FIELDS (FROM AUTO-SUBMITTED)])")
    headers = data[0][1].decode().lower()
    assert f"{VACATION}@{DOMAIN}" in headers and "auto-replied" in headers, headers


def test_pop3s_reads_a_delivered_message(mx):
    subject = f"pop3s {token()}"
    send25(mx, f"{POP}@{DOMAIN}", subject)
    assert wait_for(mx, POP, subject)
    pop = poplib.POP3_SSL(HOST, mx.port(995), context=insecure_tls(), timeout=15)
    try:
        pop.user(POP)
        pop.pass_(PASSWORD)
        count_, _ = pop.stat()
        assert count_ >= 1
        texts = [b"\n".join(pop.retr(i)[1]) for i in range(1, count_ + 1)]
        assert any(f"Subject: {subject}".encode() in t for t in texts)
    finally:
        pop.quit()


def test_spam_filed_into_junk_with_subject_prefix(mx):
    spam = f"YOU WON {token().upper()}"
    send_spam(mx, f"{JUNK}@{DOMAIN}", spam)
    assert wait_for(mx, JUNK, spam, folder="Junk"), "spam (X-Spam: Yes) was not moved to Junk"

    mx.run("set-mailbox-settings", {"spam_prefix": {"enabled": True, "prefix": "[SPAM]"}})
    try:
        assert mx.run("get-mailbox-settings")["spam_prefix"] == {"enabled": True, "prefix": "[SPAM]"}
        prefixed = f"YOU WON AGAIN {token().upper()}"
        send_spam(mx, f"{JUNK}@{DOMAIN}", prefixed)
        assert wait_for(mx, JUNK, f"[SPAM] {prefixed}", folder="Junk"), "no prefix, or not in Junk"
    finally:
        mx.run("set-mailbox-settings", {"spam_prefix": {"enabled": False}})
    assert mx.run("get-mailbox-settings")["spam_prefix"] == {"enabled": False, "prefix": "[SPAM]"}

    mx.run("set-mailbox-settings", {"spam_folder": {"enabled": False}})
    try:
        kept = f"SPAM IN INBOX {token().upper()}"
        send_spam(mx, f"{JUNK}@{DOMAIN}", kept)
        assert wait_for(mx, JUNK, kept), "with the spam folder off, spam stays in INBOX"
    finally:
        mx.run("set-mailbox-settings", {"spam_folder": {"enabled": True, "name": "Junk"}})


def test_spam_retention_job_expunges_old_junk(mx):
    mx.run("set-mailbox-settings", {"spam_retention": {"value": 10}})
    mx.run("alter-user-mailbox", {"user": KEEP, "spam_retention": {"value": 0, "custom": True}})
    listed = mx.run("list-user-mailboxes")
    assert listed["default_spam_retention"] == {"value": 10}
    mine = {m["user"]: m for m in listed["user_mailboxes"]}
    assert mine[KEEP]["spam_retention"] == {"value": 0, "custom": True}
    assert mine[JUNK]["spam_retention"] == {"value": 10, "custom": False}
    old, recent = f"old spam {token()}", f"recent spam {token()}"
    for user in (JUNK, KEEP):
        with imap(mx, user) as conn:
            assert append(conn, "Junk", old, days_old=40).startswith("OK")
            assert append(conn, "Junk", recent, days_old=2).startswith("OK")

    mx.exec("dovecot", "/usr/local/bin/spam-retention")

    with imap(mx, JUNK) as conn:
        assert count(conn, "Junk", old) == 0, "old spam was not expunged"
        assert count(conn, "Junk", recent) == 1
    with imap(mx, KEEP) as conn:  # custom retention 0: spam is kept forever
        assert count(conn, "Junk", old) == 1 and count(conn, "Junk", recent) == 1
    mx.run("set-mailbox-settings", {"spam_retention": {"value": 15}})
