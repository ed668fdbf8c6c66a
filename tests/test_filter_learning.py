"""The filter as the documentation promises it, on real daemons with real clients.

- Bayes learning: messages moved (MOVE) or copied (COPY + EXPUNGE) into Junk over IMAP are
  learned as spam, out of Junk as ham (not to Trash); the counts grow and a new similar
  message gets BAYES_SPAM / BAYES_HAM.
- A bypass rule lets even GTUBE through, and DKIM signing still happens.
- Relay rules: a message matching a sender rule and a recipient rule goes by the sender rule
  (two SMTP sinks of the test on the instance network's gateway).
"""

from __future__ import annotations

import email
import imaplib
import os
import random
import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import pytest
from protocol import HOST, imaps, insecure_tls, network_gateway, token, wait_for
from smtpsink import SmtpSink

pytestmark = pytest.mark.containers

DOMAIN = "example.org"
USER, OTHER, PASSWORD = "fllearn", "flother", "Learn-Pass-4711"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
# Extra ports of this file (SMTP sinks), below 32768: MAIL_TEST_FILTER_PORT and the next one.
SINK_PORT = int(os.environ.get("MAIL_TEST_FILTER_PORT", "3510"))

SPAM_WORDS = ("jackpot lottery winnings claim beneficiary transfer bitcoin doubling guaranteed "
              "pharmacy discount capsules casino bonus freespins payout inheritance barrister "
              "offshore remittance goldbars cryptowallet fortune").split()
HAM_WORDS = ("meeting agenda quarterly budget review minutes project milestone deliverables "
             "spreadsheet invoice supplier warehouse inventory schedule colleagues workshop "
             "timesheet rota canteen parking").split()


@pytest.fixture(scope="module")
def mx(mail):
    """The shared instance with this file's users; the filter settings are put back after."""
    mail.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": DOMAIN})
    for user in (USER, OTHER):
        mail.run("add-user", {"user": user, "password": PASSWORD, "display_name": user.title()})
    before = mail.run("get-filter-configuration")["antispam"]
    yield mail
    mail.run("set-filter-configuration", {"antispam": {
        "enabled": before["enabled"], "spam_flag_threshold": before["spam_flag_threshold"],
        "deny_message_threshold": before["deny_message_threshold"],
        "bayes": {"min_learns": before["bayes"]["min_learns"], "autolearn": before["bayes"]["autolearn"]}}})
    for r in mail.run("list-bypass-rules")["bypass_rules"]:
        mail.run("remove-bypass-rule", r)
    for r in mail.run("list-relay-rules")["rules"]:
        mail.run("remove-relay-rule", {"rule_subject": r["rule_subject"], "rule_type": r["rule_type"]})
    mail.run("set-domain-dkim", {"domain": DOMAIN, "enabled": False}, expect=None)
    for user in (USER, OTHER):
        mail.run("remove-user", {"user": user}, expect=None)


def text(words: list[str], seed: str) -> str:
    """About 80 words of `words` in an order of its own, plus a unique marker."""
    rnd = random.Random(seed)
    return " ".join(rnd.choice(words) for _ in range(80)) + f"\nref {seed}\n"


def message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m["Date"], m["Message-ID"] = formatdate(localtime=True), make_msgid(domain="client.example.net")
    m.set_content(body)
    return m


def relay(mx, m: EmailMessage, sender: str | None = None) -> None:
    """Deliver `m` from the Internet, on port 25."""
    with smtplib.SMTP(HOST, mx.port(25), timeout=30) as s:
        s.ehlo("client.example.net")
        s.send_message(m, from_addr=sender)


def submit(mx, user: str, m: EmailMessage) -> None:
    """Submit `m` as `user` on 587 (AUTH after STARTTLS)."""
    with smtplib.SMTP(HOST, mx.port(587), timeout=30) as s:
        s.starttls(context=insecure_tls())
        s.login(user, PASSWORD)
        s.send_message(m)


def find(imap: imaplib.IMAP4, subject: str) -> tuple[str, bytes, bytes] | None:
    """(folder, UID, raw message) of the message with `subject` in INBOX or Junk."""
    for folder in ("INBOX", "Junk"):
        imap.select(folder)
        _, found = imap.uid("SEARCH", None, "SUBJECT", f'"{subject}"')
        if found[0]:
            uid = found[0].split()[-1]
            _, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            return folder, uid, data[0][1]
    return None


def delivered(mx, subject: str) -> tuple[str, bytes, bytes]:
    def look():
        with imaps(mx, USER, PASSWORD) as imap:
            return find(imap, subject)
    return wait_for(look, f"delivery of {subject!r}")


def learned(mx) -> dict:
    return mx.run("get-filter-configuration")["antispam"]["bayes"]["learned"]


def spamd_result(raw: bytes) -> str:
    return email.message_from_bytes(raw)["X-Spamd-Result"] or ""


def test_moving_into_and_out_of_junk_teaches_bayes(mx):
    # High thresholds: nothing is filed or refused as spam while the test teaches; Bayes
    # scores after 3 spam and 3 ham learns.
    mx.run("set-filter-configuration", {"antispam": {"enabled": True, "spam_flag_threshold": 40,
                                                     "deny_message_threshold": 50,
                                                     "bayes": {"min_learns": 3}}})
    config = mx.run("get-filter-configuration")["antispam"]["bayes"]
    assert config["min_learns"] == 3 and config["autolearn"] is False
    start = learned(mx)
    assert start["spam"] is not None and start["ham"] is not None
    to = f"{USER}@{DOMAIN}"

    # Spam-like messages arrive in INBOX; ham-like ones sit in Junk (put there over IMAP
    # APPEND, as the filter would have filed them: APPEND is not a learning move).
    spam = [f"spam {token()}" for _ in range(4)]
    for subject in spam:
        relay(mx, message("promo@example.net", to, subject, text(SPAM_WORDS, subject)))
    ham = [f"ham {token()}" for _ in range(4)]
    with imaps(mx, USER, PASSWORD) as imap:
        for subject in ham:
            raw = message("boss@example.net", to, subject, text(HAM_WORDS, subject)).as_bytes()
            assert imap.append("Junk", None, None, raw)[0] == "OK"
    for subject in spam:
        assert delivered(mx, subject)[0] == "INBOX"
    assert learned(mx) == start  # delivering and APPEND teach nothing

    with imaps(mx, USER, PASSWORD) as imap:
        # Into Junk: MOVE twice, COPY + EXPUNGE once.
        for subject in spam[:2]:
            folder, uid, _ = find(imap, subject)
            imap.select(folder)
            assert imap.uid("MOVE", uid, "Junk")[0] == "OK"
        folder, uid, _ = find(imap, spam[2])
        imap.select(folder)
        assert imap.uid("COPY", uid, "Junk")[0] == "OK"
        imap.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
        imap.expunge()
        after_spam = learned(mx)
        assert after_spam["spam"] == start["spam"] + 3 and after_spam["ham"] == start["ham"]

        # Out of Junk: MOVE to INBOX twice, COPY + EXPUNGE once; to Trash is not ham.
        imap.select("Junk")
        for subject in ham[:2]:
            _, uid, _ = find(imap, subject)
            assert imap.uid("MOVE", uid, "INBOX")[0] == "OK"
        _, uid, _ = find(imap, ham[2])
        assert imap.uid("COPY", uid, "INBOX")[0] == "OK"
        imap.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
        imap.expunge()
        _, uid, _ = find(imap, ham[3])
        assert imap.uid("MOVE", uid, "Trash")[0] == "OK"
    after = learned(mx)
    assert after == {"spam": start["spam"] + 3, "ham": start["ham"] + 3}, (start, after)

    # A new message like the spam ones gets BAYES_SPAM, one like the ham ones BAYES_HAM.
    probe = f"probe spam {token()}"
    relay(mx, message("promo@example.net", to, probe, text(SPAM_WORDS, probe)))
    assert "BAYES_SPAM" in spamd_result(delivered(mx, probe)[2])
    probe = f"probe ham {token()}"
    relay(mx, message("boss@example.net", to, probe, text(HAM_WORDS, probe)))
    assert "BAYES_HAM" in spamd_result(delivered(mx, probe)[2])


def test_a_bypass_rule_lets_gtube_through_and_dkim_still_signs(mx):
    mx.run("set-filter-configuration", {"antispam": {"enabled": True, "spam_flag_threshold": 6,
                                                     "deny_message_threshold": 15}})
    to = f"{USER}@{DOMAIN}"
    # GTUBE from an ordinary sender is refused.
    with pytest.raises(smtplib.SMTPDataError) as refused:
        relay(mx, message("tester@example.net", to, f"gtube {token()}", f"{GTUBE}\n"))
    assert refused.value.smtp_code == 554

    mx.run("add-bypass-rule", {"type": "email", "direction": "from", "value": "tester@example.net"})
    subject = f"gtube bypassed {token()}"
    relay(mx, message("tester@example.net", to, subject, f"{GTUBE}\n"))
    assert delivered(mx, subject)[0] == "INBOX"
    with pytest.raises(smtplib.SMTPDataError):  # the rule names one sender only
        relay(mx, message("other@example.net", to, f"gtube {token()}", f"{GTUBE}\n"))

    # A bypassed sender of a signing domain: GTUBE passes and the message is DKIM-signed.
    mx.run("set-domain-dkim", {"domain": DOMAIN, "enabled": True})
    mx.run("add-bypass-rule", {"type": "email", "direction": "from", "value": f"{OTHER}@{DOMAIN}"})
    subject = f"gtube signed {token()}"
    submit(mx, OTHER, message(f"{OTHER}@{DOMAIN}", to, subject, f"{GTUBE}\n"))
    signature = email.message_from_bytes(delivered(mx, subject)[2])["DKIM-Signature"]
    assert signature and f"d={DOMAIN}" in signature


@pytest.fixture(scope="module")
def gateway(mx) -> str:
    """The host's address on the instance network: what the postfix container connects to."""
    return network_gateway(mx.instance)


@pytest.fixture
def sinks(gateway):
    servers = [SmtpSink(gateway, SINK_PORT).start(), SmtpSink(gateway, SINK_PORT + 1).start()]
    yield servers
    for server in servers:
        server.stop()


def test_sender_rule_wins_over_recipient_rule(mx, sinks):
    by_sender, by_recipient = sinks
    partner = f"partner-{token(6)}.example"
    rule = {"mandatory_tls": False, "enabled": True}
    mx.run("add-relay-rule", {**rule, "rule_type": "sender", "rule_subject": f"{USER}@{DOMAIN}",
                              "host": by_sender.host, "port": by_sender.port})
    mx.run("add-relay-rule", {**rule, "rule_type": "recipient", "rule_subject": partner,
                              "host": by_recipient.host, "port": by_recipient.port})
    both = f"both rules {token()}"
    submit(mx, USER, message(f"{USER}@{DOMAIN}", f"anna@{partner}", both, "Hello.\n"))
    only = f"recipient rule only {token()}"
    submit(mx, OTHER, message(f"{OTHER}@{DOMAIN}", f"anna@{partner}", only, "Hello.\n"))

    def got(sink, subject):
        return next((m for m in sink.messages if subject.encode() in m.data), None)
    wait_for(lambda: got(by_sender, both), "the message matching both rules, via the sender rule's host")
    wait_for(lambda: got(by_recipient, only), "the message matching the recipient rule only")
    assert got(by_recipient, both) is None and got(by_sender, only) is None
    assert got(by_sender, both).recipients == [f"anna@{partner}"]
