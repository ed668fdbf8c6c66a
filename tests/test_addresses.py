"""Addresses and domain mail flow on a running instance, with real SMTP and IMAP clients.

Mail comes in on port 25 (MTA, no AUTH) or 587 (AUTH after STARTTLS) and is read back over
IMAP on 143 after STARTTLS: unknown recipients, catch-all, wildcard, multi-destination,
internal and group addresses, hidden copies (bccaddr), and a removed domain's mail.
"""

from __future__ import annotations

import json
import smtplib
import subprocess
import time

import pytest
from protocol import HOST, inbox_subjects, insecure_tls, message, postfix_reloads, rcpt, token

pytestmark = pytest.mark.containers

PASSWORD = "Addr3ss-pass"
DOMAIN = "example.org"
# Users and group of this file (prefixed so they do not collide with other test files).
BOB, CAROL, AUDIT, SALES = "adbob", "adcarol", "adaudit", "adsales"


@pytest.fixture(scope="module")
def mx(mail):
    """The shared instance, configured, with this file's users and group."""
    mail.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": DOMAIN})
    # group addresses too (configure-module's domain has addusers on, addgroups off, as NS8)
    mail.run("alter-domain", {"domain": DOMAIN, "addusers": True, "addgroups": True})
    for user in (BOB, CAROL, AUDIT):
        mail.run("add-user", {"user": user, "password": PASSWORD, "display_name": user.title()})
    mail.run("add-group", {"group": SALES, "description": "Sales", "members": [BOB, CAROL]})
    yield mail
    for user in (BOB, CAROL, AUDIT):
        mail.run("remove-user", {"user": user}, expect=None)
    mail.run("remove-group", {"group": SALES}, expect=None)


def send25(cli, rcpts: list[str], subject: str, sender: str = "someone@example.net") -> None:
    """Deliver from outside, MTA to MTA, on port 25."""
    with smtplib.SMTP(HOST, cli.port(25), timeout=20) as s:
        s.ehlo("client.example.net")
        s.send_message(message(sender, rcpts[0], subject), sender, rcpts)


def send587(cli, user: str, rcpts: list[str], subject: str) -> None:
    """Submit as an authenticated user on 587 (AUTH after STARTTLS)."""
    with smtplib.SMTP(HOST, cli.port(587), timeout=20) as s:
        s.ehlo("client.example.net")
        s.starttls(context=insecure_tls())
        s.ehlo("client.example.net")
        s.login(user, PASSWORD)
        s.send_message(message(f"{user}@{DOMAIN}", rcpts[0], subject), f"{user}@{DOMAIN}", rcpts)


def wait_delivered(cli, user: str, needle: str, count: int = 1, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    found = 0
    while time.monotonic() < deadline:
        found = inbox_subjects(cli, user, PASSWORD, needle)
        if found >= count:
            return
        time.sleep(0.3)
    pytest.fail(f"{needle!r}: {found} message(s) for {user}, expected {count}")


def assert_not_delivered(cli, user: str, needle: str) -> None:
    assert inbox_subjects(cli, user, PASSWORD, needle) == 0, f"{user} got {needle!r}"


def errors(result) -> list[dict]:
    return json.loads(result.stdout)


def test_unknown_recipient_is_rejected_at_rcpt(mx):
    nobody = f"nobody-{token()}@{DOMAIN}"
    # NS8's exact reply (its robot scenario 00__address matches it).
    unknown = f"5.1.1 <{nobody}>: Recipient address rejected: User unknown in virtual alias table"
    assert rcpt(mx, nobody) == (550, unknown)
    code, _ = rcpt(mx, f"{BOB}@{DOMAIN}")
    assert code == 250


def test_address_actions_validate_and_list(mx):
    dest = [{"dtype": "user", "name": BOB}]
    mx.run("add-address", {"local": "adinfo", "atype": "domain", "domain": DOMAIN, "destinations": dest,
                           "description": "Info"})
    r = mx.run("add-address", {"local": "adinfo", "atype": "domain", "domain": DOMAIN, "destinations": dest},
               expect=10)
    assert errors(r)[0]["field"] == "local" and errors(r)[0]["error"] == "address_already_exists"
    r = mx.run("add-address", {"local": "x", "atype": "domain", "domain": "nodomain.example.com",
                               "destinations": dest}, expect=10)
    assert errors(r)[0]["field"] == "domain"
    r = mx.run("add-address", {"local": "x", "atype": "wildcard",
                               "destinations": [{"dtype": "group", "name": "nosuchgroup"}]}, expect=10)
    assert errors(r)[0]["field"] == "destinations"
    r = mx.run("add-address", {"local": "x", "atype": "wildcard", "domain": DOMAIN, "destinations": dest},
               expect=10)
    assert "domain" in [e["field"] for e in errors(r)]

    listed = mx.run("list-addresses")
    assert DOMAIN in listed["adduser_domains"] and DOMAIN in listed["addgroup_domains"]
    by_key = {(a["local"], a["atype"]): a for a in listed["addresses"]}
    assert by_key[("adinfo", "domain")]["domain"] == DOMAIN
    assert by_key[("adinfo", "domain")]["destinations"][0]["name"] == BOB
    assert by_key[("postmaster", "wildcard")]["delete_forbidden"] is True
    assert (BOB, "adduser") in by_key and (SALES, "addgroup") in by_key
    picks = {(d["dtype"], d["name"]) for d in mx.run("list-destinations")}
    assert {("user", BOB), ("user", CAROL), ("group", SALES)} <= picks

    mx.run("alter-address", {"local": "adinfo", "atype": "domain", "domain": DOMAIN,
                             "destinations": [{"dtype": "user", "name": CAROL}]})
    tag = token()
    send25(mx, [f"adinfo@{DOMAIN}"], f"altered {tag}")
    wait_delivered(mx, CAROL, tag)
    mx.run("remove-address", {"local": "adinfo", "atype": "domain", "domain": DOMAIN})
    assert rcpt(mx, f"adinfo@{DOMAIN}")[0] == 550
    r = mx.run("remove-address", {"local": "adinfo", "atype": "domain", "domain": DOMAIN}, expect=10)
    assert errors(r)[0]["error"] == "address_not_found"


def test_postmaster_cannot_be_removed_but_can_be_redirected(mx):
    r = mx.run("remove-address", {"local": "postmaster", "atype": "wildcard"}, expect=10)
    assert errors(r)[0]["field"] == "local" and errors(r)[0]["error"] == "address_delete_forbidden"
    mx.run("alter-address", {"local": "postmaster", "atype": "wildcard",
                             "destinations": [{"dtype": "user", "name": AUDIT}]})
    tag = token()
    send25(mx, [f"postmaster@{DOMAIN}"], f"postmaster {tag}")
    wait_delivered(mx, AUDIT, tag)
    assert "postmaster" in [a["local"] for a in mx.run("list-addresses")["addresses"]]
    mx.run("alter-address", {"local": "postmaster", "atype": "wildcard",  # back to the built-in public mailbox
                             "destinations": [{"dtype": "public", "name": "postmaster"}]})


def test_wildcard_address_on_two_domains(mx):
    mx.run("add-domain", {"domain": "adtwo.example.com"})
    mx.run("add-address", {"local": "adhelp", "atype": "wildcard",
                           "destinations": [{"dtype": "user", "name": CAROL}]})
    tag = token()
    send25(mx, [f"adhelp@{DOMAIN}", "adhelp@adtwo.example.com"], f"wildcard {tag}")
    wait_delivered(mx, CAROL, tag, count=1)
    # Both recipients expand to the same mailbox: one copy; check each domain alone too.
    tag2 = token()
    send25(mx, ["adhelp@adtwo.example.com"], f"wildcard two {tag2}")
    wait_delivered(mx, CAROL, tag2)
    # Not a mail domain: no wildcard there.
    assert rcpt(mx, "adhelp@notours.example.com")[0] == 554
    mx.run("remove-address", {"local": "adhelp", "atype": "wildcard"})
    mx.run("remove-domain", {"domain": "adtwo.example.com"})


def test_address_with_several_destinations(mx):
    external = f"ext-{token()}@relay-target.example.net"
    mx.run("add-address", {"local": "adteam", "atype": "domain", "domain": DOMAIN, "destinations": [
        {"dtype": "user", "name": AUDIT}, {"dtype": "group", "name": SALES}, {"dtype": "external", "name": external},
    ]})
    tag = token()
    send25(mx, [f"adteam@{DOMAIN}"], f"team {tag}")
    for user in (AUDIT, BOB, CAROL):
        wait_delivered(mx, user, tag)
    assert_relayed(mx, external)
    mx.run("remove-address", {"local": "adteam", "atype": "domain", "domain": DOMAIN})


def assert_relayed(cli, external: str, timeout: float = 30) -> None:
    """The external copy is queued for relay (no internet here) or the log shows the attempt."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queue = [json.loads(line) for line in cli.exec("postfix", "postqueue", "-j").splitlines() if line.strip()]
        for item in queue:
            if external in [r["address"] for r in item["recipients"]]:
                cli.exec("postfix", "postsuper", "-d", item["queue_id"])
                return
        logs = subprocess.run(["podman", "logs", f"{cli.instance}-postfix"], capture_output=True, text=True,
                              check=False)
        if any(f"to=<{external}>" in line and "relay=" in line for line in (logs.stdout + logs.stderr).splitlines()):
            return
        time.sleep(0.5)
    pytest.fail(f"no relay attempt to {external}")


def test_group_address_reaches_every_member(mx):
    tag = token()
    send25(mx, [f"{SALES}@{DOMAIN}"], f"group {tag}")
    wait_delivered(mx, BOB, tag)
    wait_delivered(mx, CAROL, tag)
    assert_not_delivered(mx, AUDIT, tag)


def test_internal_address_refused_from_outside_accepted_from_users(mx):
    mx.run("add-address", {"local": "adstaff", "atype": "domain", "domain": DOMAIN, "internal": True,
                           "destinations": [{"dtype": "user", "name": BOB}]})
    code, msg = rcpt(mx, f"adstaff@{DOMAIN}")
    # NS8's exact reply (its robot scenario 00__internal_address matches it).
    assert (code, msg) == (554, f"5.7.1 <adstaff@{DOMAIN}>: Recipient address rejected: access denied")
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send25(mx, [f"adstaff@{DOMAIN}"], "internal from outside")
    tag = token()
    send587(mx, CAROL, [f"adstaff@{DOMAIN}"], f"internal {tag}")
    wait_delivered(mx, BOB, tag)
    # Public again: accepted from outside.
    mx.run("alter-address", {"local": "adstaff", "atype": "domain", "domain": DOMAIN, "internal": False})
    assert rcpt(mx, f"adstaff@{DOMAIN}")[0] == 250
    # A user's own address can be made internal too.
    mx.run("alter-address", {"local": CAROL, "atype": "adduser", "internal": True})
    code, msg = rcpt(mx, f"{CAROL}@{DOMAIN}")
    assert code >= 500 and "5.7.1" in msg, (code, msg)
    mx.run("alter-address", {"local": CAROL, "atype": "adduser", "internal": False})
    assert rcpt(mx, f"{CAROL}@{DOMAIN}")[0] == 250
    mx.run("remove-address", {"local": "adstaff", "atype": "domain", "domain": DOMAIN})


def test_user_and_group_of_the_same_name_are_both_expanded(mx):
    """A user and a group named alike, in a domain with addusers and addgroups on: the user
    and every member get the message (NS8's scenario "both are expanded"); in a domain with
    only one of the flags, only that one."""
    name, users_only = "adteam", "adusers.example.com"
    mx.run("add-user", {"user": name, "password": PASSWORD})
    mx.run("add-group", {"group": name, "members": [BOB, CAROL]})
    mx.run("add-domain", {"domain": users_only, "addusers": True, "addgroups": False})
    try:
        tag = token()
        send25(mx, [f"{name}@{DOMAIN}"], f"both {tag}")
        for user in (name, BOB, CAROL):
            wait_delivered(mx, user, tag)
        tag = token()
        send25(mx, [f"{name}@{users_only}"], f"user only {tag}")
        wait_delivered(mx, name, tag)
        assert_not_delivered(mx, BOB, tag)
    finally:
        mx.run("remove-domain", {"domain": users_only}, expect=None)
        mx.run("remove-group", {"group": name}, expect=None)
        mx.run("remove-user", {"user": name}, expect=None)


def test_catchall_takes_unknown_recipients(mx):
    domain = "adcatch.example.com"
    mx.run("add-domain", {"domain": domain, "addusers": False, "addgroups": False})
    assert rcpt(mx, f"whoever@{domain}")[0] == 550
    r = mx.run("alter-domain", {"domain": domain, "catchall": {"dtype": "external", "name": "x@example.net"}},
               expect=10)
    assert errors(r)[0]["field"] == "catchall.dtype"
    mx.run("alter-domain", {"domain": domain, "catchall": {"dtype": "user", "name": AUDIT}})
    mx.run("add-address", {"local": "adsales", "atype": "domain", "domain": domain,
                           "destinations": [{"dtype": "user", "name": BOB}]})
    tag = token()
    send25(mx, [f"whoever-{tag}@{domain}"], f"catchall {tag}")
    wait_delivered(mx, AUDIT, tag)
    tag2 = token()
    send25(mx, [f"adsales@{domain}"], f"known {tag2}")
    wait_delivered(mx, BOB, tag2)
    assert_not_delivered(mx, AUDIT, tag2)  # a known address is not caught
    mx.run("alter-domain", {"domain": domain, "catchall": None})
    assert rcpt(mx, f"whoever@{domain}")[0] == 550
    mx.run("remove-domain", {"domain": domain})


def test_catchall_beside_user_addresses(mx):
    """NS8's scenario 00__catchall: a catch-all on a domain with addusers on (NS8 accepts
    it): users keep their mail, unknown names go to the catch-all."""
    mx.run("alter-domain", {"domain": DOMAIN, "catchall": {"dtype": "user", "name": AUDIT}})
    try:
        listed = {d["domain"]: d for d in mx.run("list-domains")}
        assert listed[DOMAIN]["catchall"]["name"] == AUDIT
        tag = token()
        send25(mx, [f"{BOB}@{DOMAIN}", f"nobody-{tag}@{DOMAIN}"], f"catchall beside users {tag}")
        wait_delivered(mx, BOB, tag)
        wait_delivered(mx, AUDIT, tag)
        assert_not_delivered(mx, CAROL, tag)
    finally:
        mx.run("alter-domain", {"domain": DOMAIN, "catchall": None})


def test_bccaddr_gets_a_hidden_copy_of_inbound_mail(mx):
    domain = "adbcc.example.com"
    mx.run("add-domain", {"domain": domain, "addusers": True, "bccaddr": f"{AUDIT}@{DOMAIN}"})
    tag = token()
    send25(mx, [f"{BOB}@{domain}"], f"bcc {tag}")
    wait_delivered(mx, BOB, tag)
    wait_delivered(mx, AUDIT, tag)
    mx.run("alter-domain", {"domain": domain, "bccaddr": None})
    tag2 = token()
    send25(mx, [f"{BOB}@{domain}"], f"nobcc {tag2}")
    wait_delivered(mx, BOB, tag2)
    assert_not_delivered(mx, AUDIT, tag2)
    mx.run("remove-domain", {"domain": domain})


def test_removed_domain_keeps_delivered_mail(mx):
    domain = "adgone.example.com"
    mx.run("add-domain", {"domain": domain, "addusers": True})
    mx.run("add-address", {"local": "adold", "atype": "domain", "domain": domain,
                           "destinations": [{"dtype": "user", "name": CAROL}]})
    tag = token()
    send25(mx, [f"{BOB}@{domain}", f"adold@{domain}"], f"gone {tag}")
    wait_delivered(mx, BOB, tag)
    wait_delivered(mx, CAROL, tag)
    mx.run("remove-domain", {"domain": domain})
    code, msg = rcpt(mx, f"{BOB}@{domain}", sender=f"new-{token()}@example.net")
    assert code == 554 and "Relay access denied" in msg, (code, msg)
    assert inbox_subjects(mx, BOB, PASSWORD, tag) == 1 and inbox_subjects(mx, CAROL, PASSWORD, tag) == 1
    # The domain's own addresses went with it.
    assert ("adold", domain) not in {(a["local"], a.get("domain")) for a in mx.run("list-addresses")["addresses"]}


def test_removed_domain_is_refused_at_once_without_reload(mx):
    domain, catch = "adquick.example.com", "adquickcatch.example.com"
    mx.run("add-domain", {"domain": domain, "addusers": True})
    mx.run("add-address", {"local": "adx", "atype": "domain", "domain": domain,
                           "destinations": [{"dtype": "user", "name": CAROL}]})
    mx.run("add-domain", {"domain": catch, "addusers": False, "catchall": {"dtype": "user", "name": AUDIT}})
    addresses = [f"{BOB}@{domain}", f"adx@{domain}", f"postmaster@{domain}", f"anyone@{catch}"]
    master_pid = mx.exec("postfix", "cat", "/var/spool/postfix/pid/master.pid").strip()
    reloads = postfix_reloads(mx)
    # One SMTP session resolves every address before the removal and again after it: its
    # smtpd process keeps the domain class of what it resolved (same sender and recipient),
    # and the address checks that come first still refuse them (User unknown).
    with smtplib.SMTP(HOST, mx.port(25), timeout=30) as s:
        s.ehlo("client.example.net")
        s.mail("someone@example.net")
        for address in addresses:
            assert s.rcpt(address)[0] == 250, address
        mx.run("remove-domain", {"domain": domain})
        mx.run("remove-domain", {"domain": catch})
        for address in addresses:
            code, msg = s.rcpt(address)
            assert code >= 500, (address, code, msg)
    for address in addresses:  # a new sender: the domain is unknown
        code, msg = rcpt(mx, address, sender=f"new-{token()}@example.net")
        assert code == 554 and "Relay access denied" in msg, (address, code, msg)
    assert postfix_reloads(mx) == reloads, "remove-domain must not reload postfix"
    assert mx.exec("postfix", "cat", "/var/spool/postfix/pid/master.pid").strip() == master_pid
