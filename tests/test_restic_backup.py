"""restic backups of a running instance (`mailctl backup`, `list-backups`, `restore`).

An instance with a user, an address, a domain with DKIM and flagged mail is backed up
twice into a local restic repository (the second time after more mail: restic adds little),
a wrong password is refused with nothing changed, then the instance is destroyed and the
latest snapshot restored into a new instance: every message (by Message-ID, with its flags)
and every setting is back. Before that, one folder (with a subfolder) of the user is listed
in a snapshot (seek-snapshot-contents), deleted, and restored from the snapshot under
"Restored folder" (restore-backup-content), over a quota it then disables.
"""

from __future__ import annotations

import json
import re
import smtplib
import stat
from pathlib import Path

import pytest
import redis
from protocol import HOST, imaps, message, wait_for

pytestmark = pytest.mark.containers

DOMAIN = "backup.example.org"
USER, PASSWORD = "bkuser", "Backup-pass1"
FIRST, MORE = 30, 3
# A folder with a subfolder (a non-ASCII name: "Sub é" is "Sub &AOk-" in IMAP) and a big
# message, so that restoring it goes over a 1 MiB quota.
FOLDER, SUBFOLDER, SUBFOLDER_IMAP = "Projects", "Projects/Sub é", "Projects/Sub &AOk-"
BIG = 1200 * 1024
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
    cli.run("add-public-mailbox", {"mailbox": "shared-projects", "acls": []})
    deliver(cli, FIRST, "first")
    wait_for(lambda: len(mailbox(cli)) == FIRST, "the first messages", timeout=60)
    with imaps(cli, USER, PASSWORD) as conn:  # flags must survive too
        conn.select("INBOX")
        conn.store("1:5", "+FLAGS", "(\\Seen \\Flagged)")
        conn.store("6", "+FLAGS", "(\\Answered $Label1)")
        for folder in (FOLDER, SUBFOLDER_IMAP):
            assert conn.create(f'"{folder}"')[0] == "OK"
        for i in range(3):
            m = message("someone@example.net", f"info@{DOMAIN}", f"project {i}")
            if i == 0:
                m.add_attachment(b"x" * BIG, maintype="application", subtype="octet-stream")
            conn.append(FOLDER, "(\\Seen)", None, m.as_bytes())
        conn.append(f'"{SUBFOLDER_IMAP}"', None, None, message("a@example.net", USER, "sub").as_bytes())
    cli.exec("dovecot", "sh", "-c", "printf 'Subject: shared\\nMessage-ID: <shared@example.net>\\n\\nhi\\n' | "
             "doveadm save -u vmail -m shared-projects")
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


def message_ids(cli, folder: str) -> set[str]:
    """Message-IDs of an IMAP folder of the user (an empty set if it does not exist)."""
    with imaps(cli, USER, PASSWORD) as conn:
        if conn.select(f'"{folder}"', readonly=True)[0] != "OK":
            return set()
        _, data = conn.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    return {item[1].decode().split(":", 1)[1].strip() for item in data if isinstance(item, tuple)}


def test_seek_snapshot_contents_lists_the_users_folders(source, repository, backups):
    from test_ns8_compat import assert_ns8_shape

    r = source.run("seek-snapshot-contents", {"repository": repository, "snapshot": "latest", "user": USER})
    assert_ns8_shape("seek-snapshot-contents", r)
    assert {"INBOX", FOLDER, SUBFOLDER} <= set(r["folders"]), r
    assert r["folders"] == sorted(r["folders"])
    first = source.run("seek-snapshot-contents", {"repository": repository, "snapshot": backups[0]["snapshot"],
                                                  "user": "vmail"})
    assert "shared-projects" in first["folders"] and FOLDER not in first["folders"]


def test_restore_backup_content_brings_a_deleted_folder_back(source, repository, backups):
    from test_ns8_compat import assert_ns8_shape

    before = {f: message_ids(source, f) for f in (FOLDER, SUBFOLDER_IMAP)}
    assert len(before[FOLDER]) == 3 and len(before[SUBFOLDER_IMAP]) == 1
    with imaps(source, USER, PASSWORD) as conn:
        for folder in (SUBFOLDER_IMAP, FOLDER):
            assert conn.delete(f'"{folder}"')[0] == "OK"
    assert message_ids(source, FOLDER) == set()
    source.run("alter-user-mailbox", {"user": USER, "quota": {"limit": 1}})  # the restore goes over it
    try:
        r = source.run("restore-backup-content", {"repository": repository, "snapshot": "latest",
                                                  "user": USER, "folder": FOLDER})
        assert_ns8_shape("restore-backup-content", r)
        assert r["quota_disabled"] is True and r["messages"] == 4
        restored = {f: message_ids(source, f"Restored folder/{f}") for f in (FOLDER, SUBFOLDER_IMAP)}
        assert restored == before
        quota = next(u["quota"] for u in source.run("list-user-mailboxes")["user_mailboxes"] if u["user"] == USER)
        assert quota["custom"] is True and quota["limit"] == 0
        with imaps(source, USER, PASSWORD) as conn:  # flags come back too, and the folders are subscribed
            conn.select(f'"Restored folder/{FOLDER}"', readonly=True)
            assert len(conn.search(None, "SEEN")[1][0].split()) == 3
            assert any(b"Restored folder/Projects" in line for line in conn.lsub()[1])
        # the same again replaces the first restore (no duplicates)
        again = source.run("restore-backup-content", {"repository": repository, "snapshot": "latest",
                                                      "user": USER, "folder": SUBFOLDER})
        assert again["quota_disabled"] is False and again["destination"] == "Restored folder/Sub é"
        assert message_ids(source, "Restored folder/Sub &AOk-") == before[SUBFOLDER_IMAP]
        # a public mailbox is restored beside itself, in the public mailboxes' owner's tree
        public = source.run("restore-backup-content", {"repository": repository, "snapshot": "latest",
                                                       "user": "vmail", "folder": "shared-projects"})
        assert public["destination"] == "shared-projects/Restored folder/shared-projects"
        status = source.exec("dovecot", "doveadm", "mailbox", "status", "-u", "vmail", "messages",
                             public["destination"])
        assert status.strip().endswith(" messages=1"), status
    finally:
        source.run("alter-user-mailbox", {"user": USER, "quota": {"custom": False}})


def test_restore_backup_content_refuses_bad_input_and_changes_nothing(source, repository, backups):
    def folders() -> set[bytes]:
        with imaps(source, USER, PASSWORD) as conn:
            return set(conn.list()[1])

    before = folders()
    base = {"repository": repository, "snapshot": "latest", "user": USER, "folder": FOLDER}
    for change, field in (({"folder": "No such folder"}, "folder"), ({"user": "nobody"}, "user"),
                          ({"snapshot": "0123abcd"}, "snapshot"), ({"repository": repository + "-none"}, "repository")):
        r = source.run("restore-backup-content", {**base, **change}, expect=10)
        assert [e["field"] for e in r.json()] == [field], r.stdout
    r = source.run("seek-snapshot-contents", {"destination": "14030a59-a4e6", "repopath": "mail/x",
                                              "snapshot": "latest", "user": USER}, expect=10)
    assert r.json()[0]["field"] == "destination"
    assert folders() == before
    leftovers = source.exec("dovecot", "sh", "-c", "ls -a /var/lib/vmail")
    assert ".restore-backup-content-" not in leftovers


def test_ns8_destination_is_resolved_through_the_agents_redis(source, repository, backups, tmp_path):
    """NS8's destination + repopath: the destination and its password are cluster keys in the
    agent's Redis (the agent hands its URL to the actions); here the "gateway" in front of the
    destinations is the directory holding the test repository."""
    from test_agent import REDIS_PORT, start_redis

    gateway, destination = str(Path(repository).parent.parent), Path(repository).parent.name
    server = start_redis(tmp_path)
    try:
        client = redis.Redis(port=REDIS_PORT)
        client.hset(f"cluster/backup_repository/{destination}", mapping={"provider": "local"})
        client.hset("private/agents/backup_destination/restic_password", destination, backups[2])
        # the instance's own password is not what opens it: the cluster's is
        source.extra_env.update(MAIL_AGENT_REDIS=f"redis://127.0.0.1:{REDIS_PORT}/0", MAIL_BACKUP_GATEWAY=gateway,
                                RESTIC_PASSWORD="not-the-password")
        request = {"destination": destination, "repopath": Path(repository).name, "snapshot": "latest",
                   "user": USER}
        assert FOLDER in source.run("seek-snapshot-contents", request)["folders"]
        client.hset("private/agents/backup_destination/restic_password", destination, "wrong")
        r = source.run("seek-snapshot-contents", request, expect=10)
        assert (r.json()[0]["field"], r.json()[0]["error"]) == ("destination", "wrong_password")
        r = source.run("seek-snapshot-contents", {**request, "destination": "unknown-uuid"}, expect=10)
        assert (r.json()[0]["field"], r.json()[0]["error"]) == ("destination", "backup_destination_not_found")
    finally:
        for name in ("MAIL_AGENT_REDIS", "MAIL_BACKUP_GATEWAY", "RESTIC_PASSWORD"):
            source.extra_env.pop(name, None)
        server.terminate()
        server.wait(10)


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
