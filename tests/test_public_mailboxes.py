"""Public (shared) mailboxes on a running instance, with real SMTP and IMAP clients.

A public mailbox is shared by IMAP ACL (RFC 4314) as "Public/<name>": a group member with
read-write rights reads, deletes, appends and makes subfolders; a read-only user reads but
cannot change anything; a user without rights does not see it. Its address exists in every
mail domain, other addresses can point at it, the shared \\Seen flag follows the
"sharedseen" mailbox setting, and removing it stops delivery at RCPT.
"""

from __future__ import annotations

import imaplib
import smtplib
import subprocess
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import pytest
from protocol import HOST, imaps, rcpt, token, wait_for

pytestmark = pytest.mark.containers

DOMAIN = "example.org"
OTHER_DOMAIN = "pb.example.com"  # added after the mailbox: its address works there too
PASSWORD = "Publ1c-pass"
# This file's users and group (prefixed so they do not collide with other test files).
SALES1, SALES2, MARY, NOBODY = "pbsales1", "pbsales2", "pbmary", "pbnobody"
USERS = (SALES1, SALES2, MARY, NOBODY)
GROUP = "pbsales"
BOX = "support"
FOLDER = f"Public/{BOX}"
ACLS = [
    {"stype": "group", "subject": {"dtype": "group", "name": GROUP}, "rights": {"rtype": "rw"}},
    {"stype": "user", "subject": {"dtype": "user", "name": MARY}, "rights": {"rtype": "ro"}},
]
RO = ["lookup", "read", "write-seen"]
RW = RO + ["write", "insert", "post", "create", "write-deleted", "expunge"]


def imap(cli, login: str, password: str = PASSWORD):
    """An IMAPS session, with this file's password by default."""
    return imaps(cli, login, password)


@pytest.fixture(scope="module")
def px(mail):
    """The shared instance with this file's users, group and the public mailbox "support"."""
    mail.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": DOMAIN})
    for user in USERS:
        mail.run("add-user", {"user": user, "password": PASSWORD})
    mail.run("add-group", {"group": GROUP, "members": [SALES1, SALES2]})
    mail.run("add-public-mailbox", {"mailbox": BOX, "acls": ACLS})
    mail.run("add-domain", {"domain": OTHER_DOMAIN})
    yield mail
    mail.run("set-mailbox-settings", {"sharedseen": {"enabled": True}}, expect=None)
    mail.run("remove-public-mailbox", {"mailbox": BOX}, expect=None)
    mail.run("remove-address", {"local": "pbhelp", "atype": "domain", "domain": DOMAIN}, expect=None)
    mail.run("remove-domain", {"domain": OTHER_DOMAIN}, expect=None)
    mail.run("remove-group", {"group": GROUP}, expect=None)
    for user in USERS:
        mail.run("remove-user", {"user": user}, expect=None)


def send25(cli, to: str, subject: str) -> None:
    """Deliver from outside, MTA to MTA, on port 25."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "someone@example.net", to, subject
    msg["Date"], msg["Message-ID"] = formatdate(localtime=True), make_msgid(domain="client.example.net")
    msg.set_content("Hello,\nthis is a test message.\n")
    with smtplib.SMTP(HOST, cli.port(25), timeout=30) as s:
        s.ehlo("client.example.net")
        s.send_message(msg, "someone@example.net", [to])


def folders(conn: imaplib.IMAP4) -> list[str]:
    typ, lines = conn.list()
    assert typ == "OK"
    return [line.decode().rsplit(' "/" ', 1)[-1].strip('"') for line in lines if line]


def find(conn: imaplib.IMAP4, subject: str) -> list[bytes]:
    """Message numbers with that subject in the selected folder."""
    typ, data = conn.search(None, "SUBJECT", f'"{subject}"')
    assert typ == "OK"
    return data[0].split()


def wait_delivered(cli, subject: str, user: str = SALES1, folder: str = FOLDER) -> None:
    def arrived() -> bool:
        with imap(cli, user) as conn:
            typ, _ = conn.select(f'"{folder}"', readonly=True)
            return typ == "OK" and bool(find(conn, subject))
    wait_for(arrived, f"{subject!r} in {folder} of {user}")


def flags(conn: imaplib.IMAP4, num: bytes) -> str:
    typ, data = conn.fetch(num, "(FLAGS)")
    assert typ == "OK"
    return data[0].decode()


def test_created_with_an_address_in_every_domain(px):
    listed = {m["mailbox"]: m for m in px.run("list-public-mailboxes")}
    acls = {(a["stype"], a["subject"]["name"]): a["rights"] for a in listed[BOX]["acls"]}
    assert acls == {("group", GROUP): {"rtype": "rw", "values": RW}, ("user", MARY): {"rtype": "ro", "values": RO}}

    subjects = px.run("list-acl-subjects")
    assert {"dtype": "group", "name": GROUP, "ui_name": GROUP} in subjects
    assert {(s["dtype"], s["name"]) for s in subjects} >= {("user", u) for u in USERS}

    addresses = px.run("list-addresses")["addresses"]
    auto = [a for a in addresses if a["local"] == BOX]
    assert auto and auto[0]["atype"] == "wildcard"
    assert auto[0]["destinations"] == [{"dtype": "public", "name": BOX}]
    assert {"dtype": "public", "name": BOX} in px.run("list-destinations")  # NS8: no ui_name

    subjects = [f"pb-dom-{token()}", f"pb-other-{token()}"]
    send25(px, f"{BOX}@{DOMAIN}", subjects[0])
    send25(px, f"{BOX}@{OTHER_DOMAIN}", subjects[1])
    for subject in subjects:
        wait_delivered(px, subject)


def test_invalid_requests_are_refused(px):
    r = px.run("add-public-mailbox", {"mailbox": BOX.upper(), "acls": ACLS}, expect=10)
    assert r.json()[0]["field"] == "mailbox" and r.json()[0]["error"] == "mailbox_already_exists"
    r = px.run("add-public-mailbox", {"mailbox": "INBOX", "acls": ACLS}, expect=10)
    assert r.json()[0]["field"] == "mailbox"
    ghost = [{"stype": "user", "subject": {"dtype": "user", "name": "pbghost"}, "rights": {"rtype": "ro"}}]
    r = px.run("add-public-mailbox", {"mailbox": "pbghostbox", "acls": ghost}, expect=10)
    assert r.json()[0]["field"] == "acls.0.subject.name"
    r = px.run("alter-public-mailbox", {"mailbox": "pbnothere", "acls": ACLS}, expect=10)
    assert r.json()[0]["error"] == "mailbox_not_found"
    r = px.run("add-address", {"local": "pbx", "atype": "domain", "domain": DOMAIN,
                               "destinations": [{"dtype": "public", "name": "pbnothere"}]}, expect=10)
    assert r.json()[0]["field"] == "destinations"
    assert sorted(m["mailbox"] for m in px.run("list-public-mailboxes")) == sorted([BOX, "postmaster"])  # + built-in


def test_group_member_reads_deletes_and_appends(px):
    subject = f"pb-rw-{token()}"
    send25(px, f"{BOX}@{DOMAIN}", subject)
    wait_delivered(px, subject, user=SALES2)
    with imap(px, SALES2) as conn:
        assert FOLDER in folders(conn)
        assert conn.select(f'"{FOLDER}"')[0] == "OK"
        (num,) = find(conn, subject)
        typ, data = conn.fetch(num, "(BODY[TEXT])")
        assert typ == "OK" and b"this is a test message" in data[0][1]
        assert conn.store(num, "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert conn.expunge()[0] == "OK"
        assert find(conn, subject) == []
        posted = f"pb-append-{token()}"
        typ, _ = conn.append(f'"{FOLDER}"', None, None, f"Subject: {posted}\r\n\r\nfrom a member\r\n".encode())
        assert typ == "OK"
        assert conn.create(f'"{FOLDER}/pbarchive"')[0] == "OK"  # any IMAP client with the create right
    with imap(px, SALES1) as conn:
        assert f"{FOLDER}/pbarchive" in folders(conn)
        conn.select(f'"{FOLDER}"', readonly=True)
        assert len(find(conn, posted)) == 1


def test_read_only_user_cannot_change_anything(px):
    subject = f"pb-ro-{token()}"
    send25(px, f"{BOX}@{DOMAIN}", subject)
    wait_delivered(px, subject, user=MARY)
    with imap(px, MARY) as conn:
        typ, data = conn.myrights(f'"{FOLDER}"')
        assert typ == "OK" and data[0].decode().split()[-1] == "lrs"
        assert conn.select(f'"{FOLDER}"')[0] == "OK"
        (num,) = find(conn, subject)
        typ, data = conn.fetch(num, "(BODY[TEXT])")
        assert typ == "OK" and b"this is a test message" in data[0][1]
        typ, data = conn.append(f'"{FOLDER}"', None, None, b"Subject: pb-intruder\r\n\r\nno\r\n")
        assert typ == "NO" and b"NOPERM" in data[0]
        conn.store(num, "+FLAGS", "(\\Deleted)")  # silently not applied without the right
        conn.expunge()
        assert find(conn, subject) == [num]
        assert "\\Deleted" not in flags(conn, num)
        assert conn.create(f'"{FOLDER}/pbmine"')[0] == "NO"


def test_user_without_rights_does_not_see_it(px):
    with imap(px, NOBODY) as conn:
        assert not [f for f in folders(conn) if f.startswith("Public/")]
        assert conn.select(f'"{FOLDER}"')[0] == "NO"


def test_seen_flag_shared_or_private(px):
    def mark_seen_by_sales(subject: str) -> tuple[str, str]:
        """SALES1 marks the message \\Seen: (its flags for SALES1, for MARY)."""
        with imap(px, SALES1) as conn:
            conn.select(f'"{FOLDER}"')
            (num,) = find(conn, subject)
            conn.store(num, "+FLAGS", "(\\Seen)")
            own = flags(conn, num)
        with imap(px, MARY) as conn:
            conn.select(f'"{FOLDER}"', readonly=True)
            (num,) = find(conn, subject)
            return own, flags(conn, num)

    shared = f"pb-shared-{token()}"
    send25(px, f"{BOX}@{DOMAIN}", shared)
    wait_delivered(px, shared)
    own, other = mark_seen_by_sales(shared)
    assert "\\Seen" in own and "\\Seen" in other

    px.run("set-mailbox-settings", {"sharedseen": {"enabled": False}})
    try:
        assert px.run("get-mailbox-settings")["sharedseen"] == {"enabled": False}
        private = f"pb-private-{token()}"
        send25(px, f"{BOX}@{DOMAIN}", private)
        wait_delivered(px, private)
        own, other = mark_seen_by_sales(private)
        assert "\\Seen" in own and "\\Seen" not in other
    finally:
        px.run("set-mailbox-settings", {"sharedseen": {"enabled": True}})


def test_rights_changed_by_action_and_over_imap(px):
    full = [{"stype": "group", "subject": {"dtype": "group", "name": GROUP}, "rights": {"rtype": "full"}},
            {"stype": "user", "subject": {"dtype": "user", "name": NOBODY}, "rights": {"rtype": "ro"}}]
    px.run("alter-public-mailbox", {"mailbox": BOX, "acls": full})
    try:
        def visible(user: str) -> Callable[[], bool]:
            def check() -> bool:
                with imap(px, user) as conn:
                    return FOLDER in folders(conn)
            return check
        wait_for(visible(NOBODY), f"{FOLDER} visible to {NOBODY}")
        wait_for(lambda: not visible(MARY)(), f"{FOLDER} hidden from {MARY}")
        # A member with the admin right shares it further from an IMAP client (SETACL).
        with imap(px, SALES1) as conn:
            assert conn.setacl(f'"{FOLDER}"', MARY, "lr")[0] == "OK"
        listed = {m["mailbox"]: m for m in px.run("list-public-mailboxes")}[BOX]
        acls = {(a["stype"], a["subject"]["name"]): a["rights"] for a in listed["acls"]}
        assert acls[("user", MARY)] == {"rtype": "custom", "values": ["lookup", "read"]}
        assert acls[("group", GROUP)]["rtype"] == "full" and acls[("user", NOBODY)]["rtype"] == "ro"
        wait_for(visible(MARY), f"{FOLDER} visible to {MARY} again")
    finally:
        px.run("alter-public-mailbox", {"mailbox": BOX, "acls": ACLS})
    listed = {m["mailbox"]: m for m in px.run("list-public-mailboxes")}[BOX]
    assert {(a["stype"], a["subject"]["name"]) for a in listed["acls"]} == {("group", GROUP), ("user", MARY)}


def test_address_with_a_public_destination(px):
    px.run("add-address", {"local": "pbhelp", "atype": "domain", "domain": DOMAIN,
                           "destinations": [{"dtype": "public", "name": BOX}]})
    subject = f"pb-address-{token()}"
    send25(px, f"pbhelp@{DOMAIN}", subject)
    wait_delivered(px, subject)


def test_removed_mailbox_gets_no_more_mail(px):
    assert rcpt(px, f"{BOX}@{DOMAIN}")[0] == 250
    px.run("remove-public-mailbox", {"mailbox": BOX})
    code, msg = rcpt(px, f"{BOX}@{DOMAIN}")
    assert 500 <= code < 600, msg
    code, msg = rcpt(px, f"pbhelp@{DOMAIN}")  # its only destination is gone: so is the address
    assert 500 <= code < 600, msg
    assert BOX not in [m["mailbox"] for m in px.run("list-public-mailboxes")]
    assert not [a for a in px.run("list-addresses")["addresses"] if a["local"] in (BOX, "pbhelp")]
    with imap(px, SALES1) as conn:
        assert not [f for f in folders(conn) if f.startswith(FOLDER)]
    r = px.run("remove-public-mailbox", {"mailbox": BOX}, expect=10)
    assert r.json()[0]["error"] == "mailbox_not_found"


def test_mailbox_deleted_in_dovecot_is_unlisted_and_made_again(px):
    """NS8's scenario "orphantest": a public mailbox deleted behind the actions' back
    (doveadm, an IMAP client) leaves the list, and add-public-mailbox makes it again with
    its address; it is then removed as usual."""
    name = "pborphan"
    px.run("add-public-mailbox", {"mailbox": name, "acls": []})
    subprocess.run(["podman", "exec", f"{px.instance}-dovecot", "doveadm", "mailbox", "delete", "-u", "vmail",
                    name], check=True, capture_output=True)
    assert name not in [m["mailbox"] for m in px.run("list-public-mailboxes")]
    px.run("add-public-mailbox", {"mailbox": name, "acls": []})
    assert {"mailbox": name, "acls": []} in px.run("list-public-mailboxes")
    assert {"atype": "wildcard", "local": name, "destinations": [{"dtype": "public", "name": name}],
            "description": f"Public mailbox {name}"} in px.run("list-addresses")["addresses"]
    assert px.run("add-public-mailbox", {"mailbox": name, "acls": []}, expect=10).json()[0]["error"] == \
        "mailbox_already_exists"
    px.run("remove-public-mailbox", {"mailbox": name})
    assert name not in [m["mailbox"] for m in px.run("list-public-mailboxes")]
