"""Queue, relay rules and always-bcc on a running instance, with real SMTP clients and servers.

Mail is submitted on 587 (AUTH after STARTTLS) or received on 25; relay hosts are a small
SMTP server of the tests (tests/smtpsink.py) listening on the instance network's gateway
address, which the postfix container reaches, or an unreachable port (127.0.0.1:9) so
that a message stays in the queue. Local copies are read back over IMAP.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import subprocess
import time
from email.message import EmailMessage
from email.utils import formatdate

import pytest
from protocol import HOST, inbox_subjects, insecure_tls, network_gateway, token, wait_for
from smtpsink import SmtpSink

pytestmark = pytest.mark.containers

PASSWORD = "Qu3ue-pass"
RELAY_PASSWORD = "Rel@y s3cret-pw"   # must never show up outside the secrets directory
DOMAIN = "example.org"
BOB, CAROL, AUDIT = "qrbob", "qrcarol", "qraudit"
UNREACHABLE = {"host": "127.0.0.1", "port": 9}


@pytest.fixture(scope="module")
def mx(mail):
    """The shared instance, configured, with this file's users; relay rules and queue emptied after."""
    mail.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": DOMAIN})
    for user in (BOB, CAROL, AUDIT):
        mail.run("add-user", {"user": user, "password": PASSWORD, "display_name": user.title()})
    yield mail
    remove_all_rules(mail, ("wildcard", "sender"))  # recipient rules are for this file's own domains
    mail.run("set-always-bcc", {"bcc": ""}, expect=None)
    mail.run("flush-postfix-queue", {"queue": "", "action": "delete_all"}, expect=None)
    for user in (BOB, CAROL, AUDIT):
        mail.run("remove-user", {"user": user}, expect=None)


@pytest.fixture(scope="module")
def gateway(mx) -> str:
    """The host's address on the instance network: what the postfix container connects to."""
    return network_gateway(mx.instance)


@pytest.fixture
def sink(gateway):
    server = SmtpSink(gateway).start()
    yield server
    server.stop()


def instance_tls(cli) -> ssl.SSLContext:
    """A server TLS context with the instance's own self-signed certificate."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_dir = cli.state_dir / cli.instance / "tls"
    tls.load_cert_chain(tls_dir / "cert.pem", tls_dir / "key.pem")
    return tls


@pytest.fixture
def tls_sink(gateway, mx):
    """A relay host offering STARTTLS (credentials are only ever sent over TLS)."""
    server = SmtpSink(gateway, tls_context=instance_tls(mx)).start()
    yield server
    server.stop()


@pytest.fixture
def clean(mx):
    """A test that starts with an empty queue and no default or sender rule (`mx` cleans up at the end).

    Recipient rules of earlier tests stay: each test uses its own random domains.
    """
    remove_all_rules(mx, ("wildcard", "sender"))
    mx.run("flush-postfix-queue", {"queue": "", "action": "delete_all"})
    return mx


def remove_all_rules(cli, types: tuple[str, ...] = ("sender", "recipient", "wildcard")) -> None:
    for rule in cli.run("list-relay-rules")["rules"]:
        if rule["rule_type"] in types:
            cli.run("remove-relay-rule", {"rule_subject": rule["rule_subject"], "rule_type": rule["rule_type"]})


def rule(rule_type: str, subject: str, host: str, port: int, **fields) -> dict:
    return {"rule_type": rule_type, "rule_subject": subject, "host": host, "port": port,
            "mandatory_tls": False, "enabled": True, **fields}


def message(sender: str, to: str, subject: str, msgid: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"], msg["Message-ID"] = formatdate(localtime=True), f"<{msgid}>"
    msg.set_content(f"Test message {subject}.\n")
    return msg


def submit(cli, user: str, to: str, subject: str | None = None) -> str:
    """Submit a message as `user` on 587; return its Message-ID (without brackets)."""
    msgid = f"{token()}@qr.example.org"
    with smtplib.SMTP(HOST, cli.port(587), timeout=20) as s:
        s.starttls(context=insecure_tls())
        s.login(user, PASSWORD)
        s.send_message(message(f"{user}@{DOMAIN}", to, subject or msgid, msgid), f"{user}@{DOMAIN}", [to])
    return msgid


def queued(cli, msgid: str) -> dict | None:
    """The queue entry of `msgid` once postfix has tried and deferred it."""
    for entry in cli.run("report-queue-status")["queue_status"]:
        if entry.get("message_id") == f"<{msgid}>" and entry["recipients"][0].get("delay_reason"):
            return entry
    return None


def in_queue(cli) -> set[str]:
    return {e.get("message_id", "") for e in cli.run("report-queue-status")["queue_status"]}


def received(sink: SmtpSink, msgid: str):
    return next((m for m in sink.messages if msgid.encode() in m.data), None)


def errors(result) -> list[dict]:
    return json.loads(result.stdout)


def test_relay_rules_list_in_order_and_validate(clean):
    mx = clean
    net = f"l{token()}.example.net"   # recipient rules of this test stay: a domain of its own
    boss = f"boss@{net}"
    for r in (rule("wildcard", "*", "smarthost.example.net", 587, username="u0", password="p0"),
              rule("recipient", net, "mx.example.net", 25),
              rule("recipient", boss, "10.1.2.3", 2525, mandatory_tls=True),
              rule("sender", "example.org", "out.example.net", 465, enabled=False),
              rule("sender", "Ann@Example.org", "2001:db8::25", 25)):
        mx.run("add-relay-rule", r)
    listed = mx.run("list-relay-rules")
    assert listed["has_wildcard"] is True
    mine = ("ann@example.org", "example.org", boss, net, "*")
    assert [(r["rule_type"], r["rule_subject"]) for r in listed["rules"] if r["rule_subject"] in mine] == [
        ("sender", "ann@example.org"), ("sender", "example.org"),
        ("recipient", boss), ("recipient", net), ("wildcard", "*")]
    by_subject = {r["rule_subject"]: r for r in listed["rules"]}
    assert by_subject["*"]["has_password"] is True and by_subject["*"]["username"] == "u0"
    assert by_subject[boss]["tls"] is True and by_subject[boss]["port"] == 2525
    assert by_subject["example.org"]["enabled"] is False
    assert "password" not in json.dumps(listed["rules"]).replace("has_password", "")
    # The default rule is postfix's relayhost; the others are read at query time.
    assert mx.exec("postfix", "postconf", "-h", "relayhost").strip() == "[smarthost.example.net]:587"
    assert mx.exec("postfix", "postmap", "-q", boss,
                   "sqlite:/etc/postfix/sqlite-relay-recipient.cf").strip() == "rcpt_smtp:[10.1.2.3]:2525"
    assert mx.exec("postfix", "postmap", "-q", "ann@example.org",
                   "sqlite:/etc/postfix/sqlite-relay-sender.cf").strip() == "[ipv6:2001:db8::25]:25"
    assert mx.exec("postfix", "postmap", "-q", "@example.org",
                   "sqlite:/etc/postfix/sqlite-relay-sender.cf").strip() == "", "disabled rules are ignored"
    assert mx.exec("postfix", "postmap", "-q", "[10.1.2.3]:2525",
                   "sqlite:/etc/postfix/sqlite-relay-tls.cf").strip() == "encrypt"

    r = mx.run("add-relay-rule", rule("recipient", net, "other.example.net", 25), expect=10)
    assert errors(r)[0]["field"] == "rule_subject" and errors(r)[0]["error"] == "rule_already_exists"
    r = mx.run("add-relay-rule", rule("wildcard", "example.com", "h.example.net", 25), expect=10)
    assert errors(r)[0]["field"] == "rule_subject"
    r = mx.run("add-relay-rule", rule("recipient", "x@mailbox.internal", "h.example.net", 25), expect=10)
    assert errors(r)[0]["error"] == "rule_subject_reserved"
    r = mx.run("add-relay-rule", rule("recipient", "example.com", "h.example.net", 25, username="a:b"), expect=10)
    assert errors(r)[0]["field"] == "username"
    r = mx.run("alter-relay-rule", rule("recipient", "nowhere.example.com", "h.example.net", 25), expect=10)
    assert errors(r)[0]["field"] == "rule_subject" and errors(r)[0]["error"] == "rule_not_found"
    # Another recipient rule to the smarthost with other credentials would share its map key.
    r = mx.run("add-relay-rule", rule("recipient", "example.com", "smarthost.example.net", 587,
                                      username="u1", password="p1"), expect=10)
    assert errors(r)[0]["field"] == "host" and errors(r)[0]["error"] == "relay_credentials_conflict"

    # alter: an omitted password keeps the stored one; no username drops it.
    mx.run("alter-relay-rule", rule("wildcard", "*", "smarthost.example.net", 2525, username="u0"))
    assert {r["rule_subject"]: r for r in mx.run("list-relay-rules")["rules"]}["*"]["has_password"] is True
    assert mx.exec("postfix", "postconf", "-h", "relayhost").strip() == "[smarthost.example.net]:2525"
    mx.run("alter-relay-rule", rule("wildcard", "*", "smarthost.example.net", 2525, username=""))
    assert {r["rule_subject"]: r for r in mx.run("list-relay-rules")["rules"]}["*"]["has_password"] is False

    # A sender and a recipient rule with the same subject: remove needs the type.
    mx.run("add-relay-rule", rule("sender", net, "out.example.net", 25))
    r = mx.run("remove-relay-rule", {"rule_subject": net}, expect=10)
    assert errors(r)[0]["field"] == "rule_type"
    mx.run("remove-relay-rule", {"rule_subject": net, "rule_type": "sender"})
    mx.run("remove-relay-rule", {"rule_subject": "*"})
    r = mx.run("remove-relay-rule", {"rule_subject": "*"}, expect=10)
    assert errors(r)[0]["error"] == "rule_not_found"
    assert mx.exec("postfix", "postconf", "-h", "relayhost").strip() == ""
    assert not mx.run("list-relay-rules")["has_wildcard"]


def test_recipient_rule_relays_with_auth_and_password_stays_secret(clean, tls_sink):
    mx, sink = clean, tls_sink
    sink.require_auth = True
    domain = f"r{token()}.example.net"
    out = mx("run", "add-relay-rule", "--data", json.dumps(
        rule("recipient", domain, sink.host, sink.port, username="relayuser", password=RELAY_PASSWORD)))
    assert out.code == 0, out.stderr
    msgid = submit(mx, BOB, f"dest@{domain}")
    got = wait_for(lambda: received(sink, msgid), "the relayed message")
    assert got.auth == ("relayuser", RELAY_PASSWORD)
    assert got.recipients == [f"dest@{domain}"] and got.sender == f"{BOB}@{DOMAIN}"

    # The password is write-only: not in outputs, the database, rendered files or logs.
    listed = mx("run", "list-relay-rules")
    assert {r["rule_subject"]: r for r in json.loads(listed.stdout)["rules"]}[domain]["has_password"] is True
    state = mx.state_dir / mx.instance
    assert RELAY_PASSWORD.encode() not in (state / "db" / "state.sqlite").read_bytes()
    for path in (state / "config").rglob("*"):
        if path.is_file():
            assert RELAY_PASSWORD.encode() not in path.read_bytes(), path
    logs = subprocess.run(["podman", "logs", f"{mx.instance}-postfix"], capture_output=True, text=True)
    for text in (out.stdout, out.stderr, listed.stdout, listed.stderr, logs.stdout, logs.stderr):
        assert RELAY_PASSWORD not in text
    for secret in ("postfix-sasl_passwd.map", "relay-passwords.json"):
        assert (state / "secrets" / secret).stat().st_mode & 0o077 == 0

    # A disabled rule is ignored: the next message goes by the default rule instead.
    mx.run("add-relay-rule", rule("wildcard", "*", **UNREACHABLE))
    mx.run("alter-relay-rule", rule("recipient", domain, sink.host, sink.port, username="relayuser",
                                    enabled=False))
    second = submit(mx, BOB, f"dest@{domain}")
    entry = wait_for(lambda: queued(mx, second), "the deferred message")
    assert "127.0.0.1[127.0.0.1]:9" in entry["recipients"][0]["delay_reason"]
    assert received(sink, second) is None
    # Enabled again, with the password it kept: resend delivers it, authenticated.
    mx.run("alter-relay-rule", rule("recipient", domain, sink.host, sink.port, username="relayuser"))
    mx.run("flush-postfix-queue", {"queue": entry["queue_id"], "action": "resend"})
    assert wait_for(lambda: received(sink, second), "the resent message").auth == ("relayuser", RELAY_PASSWORD)


def test_failed_apply_restores_the_secret_files(clean):
    mx = clean
    secrets = mx.state_dir / mx.instance / "secrets"
    names = ("postfix-sasl_passwd.map", "relay-passwords.json")
    before = {n: (secrets / n).read_bytes() if (secrets / n).exists() else None for n in names}
    inode = (secrets / names[0]).stat().st_ino
    mx.extra_env["MAIL_FAULT_BAD_POSTFIX"] = "1"
    try:
        r = mx("run", "add-relay-rule", "--data", json.dumps(
            rule("recipient", "fail.example.net", "h.example.net", 25, username="u", password=RELAY_PASSWORD)))
    finally:
        mx.extra_env.pop("MAIL_FAULT_BAD_POSTFIX")
    assert r.code == 1 and "postfix refused" in r.stderr
    assert {n: (secrets / n).read_bytes() if (secrets / n).exists() else None for n in names} == before
    assert (secrets / names[0]).stat().st_ino == inode, "a bind-mounted secret is rewritten in place"
    assert "fail.example.net" not in [r["rule_subject"] for r in mx.run("list-relay-rules")["rules"]]


def test_sender_rules_exact_before_domain_before_default(clean, sink):
    mx = clean
    mx.run("add-relay-rule", rule("wildcard", "*", "127.0.0.1", 7))
    mx.run("add-relay-rule", rule("sender", DOMAIN, "127.0.0.1", 9))
    mx.run("add-relay-rule", rule("sender", f"{BOB}@{DOMAIN}", sink.host, sink.port))
    to = f"someone@s{token()}.example.com"
    bob = submit(mx, BOB, to)
    carol = submit(mx, CAROL, to)
    assert wait_for(lambda: received(sink, bob), "bob's message via his sender rule").auth is None
    entry = wait_for(lambda: queued(mx, carol), "carol's message deferred")
    assert "127.0.0.1[127.0.0.1]:9" in entry["recipients"][0]["delay_reason"]
    # Without sender rules the default rule applies.
    mx.run("remove-relay-rule", {"rule_subject": DOMAIN})
    other = submit(mx, CAROL, to)
    entry = wait_for(lambda: queued(mx, other), "the message deferred by the default rule")
    assert "127.0.0.1[127.0.0.1]:7" in entry["recipients"][0]["delay_reason"]
    # A recipient rule routes its domain.
    mx.run("add-relay-rule", rule("recipient", to.split("@")[1], sink.host, sink.port))
    third = submit(mx, CAROL, to)
    wait_for(lambda: received(sink, third), "carol's message via the recipient rule")


def test_sender_rule_wins_over_recipient_rule_and_local_recipients_stay_local(clean, sink):
    """One message matching a sender rule (bob's) and a recipient rule, with a local recipient
    too: the remote recipient goes through the sender rule's host (sender before recipient),
    the local one is delivered to its mailbox and never handed to the relay."""
    mx = clean
    remote_domain = f"r{token()}.example.com"
    mx.run("add-relay-rule", rule("sender", f"{BOB}@{DOMAIN}", sink.host, sink.port))
    mx.run("add-relay-rule", rule("recipient", remote_domain, UNREACHABLE["host"], UNREACHABLE["port"]))
    remote, local = f"someone@{remote_domain}", f"{CAROL}@{DOMAIN}"
    msgid = f"{token()}@qr.example.org"
    with smtplib.SMTP(HOST, mx.port(587), timeout=20) as s:
        s.starttls(context=insecure_tls())
        s.login(BOB, PASSWORD)
        s.send_message(message(f"{BOB}@{DOMAIN}", f"{remote}, {local}", msgid, msgid), f"{BOB}@{DOMAIN}",
                       [local, remote])
    relayed = wait_for(lambda: received(sink, msgid), "the remote copy via bob's sender rule")
    assert [r.lower() for r in relayed.recipients] == [remote]
    wait_for(lambda: inbox_subjects(mx, CAROL, PASSWORD, msgid) == 1, "the local copy in carol's mailbox")
    time.sleep(2)  # a second copy (through the relay, or twice) would have had time
    assert len([m for m in sink.messages if msgid.encode() in m.data]) == 1
    assert inbox_subjects(mx, CAROL, PASSWORD, msgid) == 1
    assert f"<{msgid}>" not in in_queue(mx)


def test_queue_report_trace_resend_delete(clean, sink):
    mx = clean
    domain = f"q{token()}.example.net"
    mx.run("add-relay-rule", rule("recipient", domain, **UNREACHABLE))
    first, second = submit(mx, BOB, f"ann@{domain}"), submit(mx, BOB, f"joe@{domain}")
    entry = wait_for(lambda: queued(mx, first), "the deferred message")
    wait_for(lambda: queued(mx, second), "the second deferred message")
    assert entry["queue_name"] == "deferred"
    assert entry["sender"] == f"{BOB}@{DOMAIN}"
    assert entry["recipients"][0]["address"] == f"ann@{domain}"
    assert "Connection refused" in entry["recipients"][0]["delay_reason"]
    assert entry["message_size"] > 100 and abs(entry["arrival_time"] - time.time()) < 120

    trace = mx.run("trace-message", {"message_id": f"<{first}>"})
    assert trace["queue_ids"] == [entry["queue_id"]]
    texts = [f"{line['daemon']}: {line['text']}" for line in trace["lines"]]
    assert any("postfix/submission/smtpd" in t and "sasl_username=" + BOB in t for t in texts), texts
    assert any(f"message-id=<{first}>" in t for t in texts), texts
    assert any(t.startswith("rspamd:") and f"<{first}>" in t for t in texts), texts
    assert any("status=deferred" in t and "127.0.0.1[127.0.0.1]:9" in t for t in texts), texts
    assert [line["time"] for line in trace["lines"]] == sorted(line["time"] for line in trace["lines"])
    assert second not in json.dumps(trace)

    # resend: one more attempt now (still refused), then through a working relay.
    attempts = sum("status=deferred" in t for t in texts)
    mx.run("flush-postfix-queue", {"queue": entry["queue_id"], "action": "resend"})
    wait_for(lambda: sum("status=deferred" in line["text"] for line in
                         mx.run("trace-message", {"message_id": first})["lines"]) > attempts, "a new attempt")
    mx.run("alter-relay-rule", rule("recipient", domain, sink.host, sink.port))
    mx.run("flush-postfix-queue", {"queue": entry["queue_id"], "action": "resend"})
    wait_for(lambda: received(sink, first), "the resent message")
    wait_for(lambda: f"<{first}>" not in in_queue(mx), "the message to leave the queue")
    assert f"<{second}>" in in_queue(mx)
    trace = mx.run("trace-message", {"message_id": first})
    assert any("status=sent" in line["text"] and str(sink.port) in line["text"] for line in trace["lines"])

    # delete one, by id; an unknown id names the field.
    r = mx.run("flush-postfix-queue", {"queue": "ABCDEF123", "action": "delete"}, expect=10)
    assert errors(r)[0]["field"] == "queue" and errors(r)[0]["error"] == "queue_id_not_found"
    r = mx.run("flush-postfix-queue", {"queue": "ABCDEF123", "action": "resend"}, expect=10)
    assert errors(r)[0]["field"] == "queue"
    mx.run("flush-postfix-queue", {"queue": queued(mx, second)["queue_id"], "action": "delete"})
    assert f"<{second}>" not in in_queue(mx)

    # resend_all and delete_all.
    mx.run("alter-relay-rule", rule("recipient", domain, **UNREACHABLE))
    more = [submit(mx, CAROL, f"x{i}@{domain}") for i in range(2)]
    for msgid in more:
        wait_for(lambda msgid=msgid: queued(mx, msgid), "deferred messages")
    mx.run("flush-postfix-queue", {"queue": "", "action": "resend_all"})
    assert {f"<{m}>" for m in more} <= in_queue(mx)
    mx.run("flush-postfix-queue", {"queue": "", "action": "delete_all"})
    assert mx.run("report-queue-status") == {"queue_status": []}


def test_mandatory_tls(clean, sink, gateway):
    mx = clean
    domain = f"t{token()}.example.net"
    mx.run("add-relay-rule", rule("recipient", domain, sink.host, sink.port, mandatory_tls=True))
    msgid = submit(mx, BOB, f"ann@{domain}")
    entry = wait_for(lambda: queued(mx, msgid), "the message refused for lack of TLS")
    assert "TLS" in entry["recipients"][0]["delay_reason"]
    assert received(sink, msgid) is None

    tls = instance_tls(mx)
    secure = SmtpSink(gateway, tls_context=tls).start()
    # Port 465: TLS from the first byte (the smtps transport), here for the default rule.
    wrapped = SmtpSink(gateway, 465, tls_context=tls, implicit_tls=True).start()
    try:
        mx.run("alter-relay-rule", rule("recipient", domain, secure.host, secure.port, mandatory_tls=True))
        mx.run("flush-postfix-queue", {"queue": entry["queue_id"], "action": "resend"})
        assert wait_for(lambda: received(secure, msgid), "the message over STARTTLS").tls is True
        mx.run("add-relay-rule", rule("wildcard", "*", wrapped.host, 465))
        other = submit(mx, BOB, f"ann@w{token()}.example.com")
        assert wait_for(lambda: received(wrapped, other), "the message over port 465").tls is True
    finally:
        secure.stop()
        wrapped.stop()


def test_credentials_never_travel_in_clear_and_certificates_can_be_verified(clean, sink, tls_sink):
    """A rule with credentials and mandatory_tls off still requires TLS (no AUTH in clear);
    tls_verify refuses a relay host whose certificate no system CA signed."""
    mx = clean
    sink.require_auth = tls_sink.require_auth = True
    domain = f"c{token()}.example.net"
    mx.run("add-relay-rule", rule("recipient", domain, sink.host, sink.port, username="relayuser",
                                  password=RELAY_PASSWORD))
    msgid = submit(mx, BOB, f"dest@{domain}")
    entry = wait_for(lambda: queued(mx, msgid), "the message held back for lack of TLS")
    assert "TLS" in entry["recipients"][0]["delay_reason"]
    assert sink.auth_attempts == [] and received(sink, msgid) is None

    # The same host with TLS but a self-signed certificate: refused when verification is asked.
    mx.run("alter-relay-rule", rule("recipient", domain, tls_sink.host, tls_sink.port, username="relayuser",
                                    tls_verify=True))
    assert next(r for r in mx.run("list-relay-rules")["rules"] if r["rule_subject"] == domain)["tls_verify"]
    mx.run("flush-postfix-queue", {"queue": entry["queue_id"], "action": "resend"})
    wait_for(lambda: "verif" in ((queued(mx, msgid) or {}).get("recipients") or [{}])[0].get("delay_reason", "")
             .lower(), "the message refused for an unverified certificate")
    assert tls_sink.auth_attempts == [] and received(tls_sink, msgid) is None
    # An alter that does not name tls_verify (an NS8 client) keeps it; turning it off delivers over TLS.
    mx.run("alter-relay-rule", rule("recipient", domain, tls_sink.host, tls_sink.port, username="relayuser"))
    assert next(r for r in mx.run("list-relay-rules")["rules"] if r["rule_subject"] == domain)["tls_verify"]
    mx.run("alter-relay-rule", rule("recipient", domain, tls_sink.host, tls_sink.port, username="relayuser",
                                    tls_verify=False))
    mx.run("flush-postfix-queue", {"queue": queued(mx, msgid)["queue_id"], "action": "resend"})
    got = wait_for(lambda: received(tls_sink, msgid), "the relayed message over TLS")
    assert got.tls is True and got.auth == ("relayuser", RELAY_PASSWORD)


def test_always_bcc_copies_to_a_local_mailbox(mx):
    assert mx.run("get-always-bcc") == {"bcc": ""}
    mx.run("set-always-bcc", {"bcc": f"{AUDIT}@{DOMAIN}"})
    assert mx.run("get-always-bcc") == {"bcc": f"{AUDIT}@{DOMAIN}"}
    assert mx.exec("postfix", "postconf", "-h", "always_bcc").strip() == f"{AUDIT}@{DOMAIN}"
    subject = f"bcc-{token()}"
    with smtplib.SMTP(HOST, mx.port(25), timeout=20) as s:
        s.send_message(message("someone@example.net", f"{BOB}@{DOMAIN}", subject, f"{token()}@example.net"))
    wait_for(lambda: inbox_subjects(mx, BOB, PASSWORD, subject), "the message to bob")
    wait_for(lambda: inbox_subjects(mx, AUDIT, PASSWORD, subject), "the always-bcc copy")

    mx.run("set-always-bcc", {"bcc_archive": ""})
    assert mx.run("get-always-bcc") == {"bcc": ""}
    assert mx.exec("postfix", "postconf", "-h", "always_bcc").strip() == ""
    r = mx.run("set-always-bcc", {"bcc": "not an address"}, expect=10)
    assert errors(r)[0]["field"] == "bcc"

