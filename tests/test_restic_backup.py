"""restic backups of a running instance (`mailctl backup`, `list-backups`, `restore`).

An instance with a user, an address, a domain with DKIM and flagged mail is backed up
twice into a local restic repository (the second time after more mail: restic adds little),
a wrong password is refused with nothing changed, then the instance is destroyed and the
latest snapshot restored into a new instance: every message (by Message-ID, with its flags)
and every setting is back.
"""

from __future__ import annotations

import json
import re
import smtplib
import stat

import pytest
from protocol import HOST, imaps, message, wait_for

pytestmark = pytest.mark.containers

DOMAIN = "backup.example.org"
USER, PASSWORD = "bkuser", "Backup-pass1"
FIRST, MORE = 30, 3
SETTINGS = ("list-domains", "list-users", "list-addresses", "get-mailbox-settings")


def deliver(cli, count: int, tag: str) -> None:
    with smtplib.SMTP(HOST, cli.port(25), timeout=30) as s:
        s.ehlo("client.example.net")
        for i in range(count):
            s.send_message(message("someone@example.net", f"info@{DOMAIN}", f"{tag} {i}"))


def mailbox(cli) -> dict[str, str]:
    """Message-ID -> flags of every INBOX message of the user."""
    with imaps(cli, USER, PASSWORD) as conn:
        conn.select("INBOX", readonly=True)
        _, data = conn.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    found = {}
    for item in data:
        if isinstance(item, tuple):
            flags = " ".join(sorted(re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split()))
            found[item[1].decode().split(":", 1)[1].strip()] = flags
    return found


def settings(cli) -> dict:
    return {action: cli.run(action) for action in SETTINGS}


@pytest.fixture(scope="module")
def source(fresh_instance):
    cli = fresh_instance("rb1", 25400)
    cli.run("configure-module", {"hostname": "mail.backup.example.org", "user_domain": "local",
                                 "mail_domain": DOMAIN})
    cli.run("add-user", {"user": USER, "password": PASSWORD})
    cli.run("add-address", {"local": "info", "atype": "domain", "domain": DOMAIN,
                            "destinations": [{"dtype": "user", "name": USER}]})
    cli.run("set-domain-dkim", {"domain": DOMAIN, "enabled": True})
    deliver(cli, FIRST, "first")
    wait_for(lambda: len(mailbox(cli)) == FIRST, "the first messages", timeout=60)
    with imaps(cli, USER, PASSWORD) as conn:  # flags must survive too
        conn.select("INBOX")
        conn.store("1:5", "+FLAGS", "(\\Seen \\Flagged)")
        conn.store("6", "+FLAGS", "(\\Answered $Label1)")
    return cli


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    return str(tmp_path_factory.mktemp("restic") / "repo")


@pytest.fixture(scope="module")
def backups(source, repository):
    """Two backups: the first makes the repository and the password; the second follows more mail."""
    first = source("backup", "--repository", repository)
    assert first.code == 0, first.stderr
    password = re.search(r"new restic repository password: (\S+)", first.stderr).group(1)
    assert "WARNING" in first.stderr and password not in first.stdout
    deliver(source, MORE, "more")
    wait_for(lambda: len(mailbox(source)) == FIRST + MORE, "the later messages", timeout=60)
    second = source("backup", "--repository", repository)
    assert second.code == 0, second.stderr
    assert "password" not in second.stderr  # shown once only
    return first.json(), second.json(), password, mailbox(source), settings(source)


def test_password_is_a_private_instance_secret(source, backups):
    secret = source.state_dir / source.instance / "secrets" / "restic-password"
    assert secret.read_text().strip() == backups[2]
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_second_backup_is_incremental(backups):
    first, second, *_ = backups
    print(f"\nfirst backup: {first['data_added']} bytes added ({first['total_bytes']} read); "
          f"second: {second['data_added']} bytes added ({second['total_bytes']} read)")
    assert first["snapshot"] != second["snapshot"]
    assert second["total_bytes"] >= first["total_bytes"] * 0.9
    assert second["data_added"] < first["data_added"] / 4


def test_list_backups_shows_both_snapshots_with_sizes(source, repository, backups):
    r = source("list-backups", "--repository", repository, "--json")
    assert r.code == 0, r.stderr
    snaps = r.json()
    assert [s["id"] for s in snaps] == [backups[0]["snapshot"], backups[1]["snapshot"]]
    assert all(s["size"] > 0 and s["files"] > 0 and s["instance"] == source.instance for s in snaps)
    text = source("list-backups", "--repository", repository)
    assert backups[1]["snapshot"] in text.stdout and "bytes" in text.stdout


def test_wrong_password_is_refused_and_changes_nothing(source, repository, backups):
    source.extra_env["RESTIC_PASSWORD"] = "not-the-password"
    try:
        r = source("restore", "--repository", repository, "--replace")
        listed = source("list-backups", "--repository", repository)
    finally:
        del source.extra_env["RESTIC_PASSWORD"]
    assert r.code == 10, r.stderr
    assert json.loads(r.stdout)[0]["error"] == "wrong_password"
    assert listed.code != 0 and "password" in listed.stderr
    status = source("status", "--json").json()
    assert all(c["state"] == "running" for c in status)
    assert settings(source) == backups[4] and mailbox(source) == backups[3]


def test_restore_into_a_new_instance_brings_everything_back(source, repository, backups, fresh_instance):
    *_, password, messages, before = backups
    source("down", "--purge")  # the old instance is gone, with its mail and secrets
    target = fresh_instance("rb2", 25500, up=False)
    target.extra_env["RESTIC_PASSWORD"] = password
    r = target("restore", "--repository", repository)
    assert r.code == 0, r.stdout + r.stderr
    assert backups[1]["snapshot"] in r.stderr
    del target.extra_env["RESTIC_PASSWORD"]
    up = target("up", timeout=300)
    assert up.code == 0, up.stderr
    assert settings(target) == before
    restored = wait_for(lambda: mailbox(target), "IMAP on the restored instance", timeout=60)
    assert restored == messages and len(restored) == FIRST + MORE
    assert sum("\\Flagged" in f for f in restored.values()) == 5
    # the restored instance keeps the password: it backs up into the same repository
    again = target("backup", "--repository", repository, "--keep-daily", "7")
    assert again.code == 0, again.stderr
