"""IMAP migration: sync jobs copy an account of another IMAP server into a local mailbox.

The old server is a second Dovecot (the project's dovecot image, a passwd-file account,
plain IMAP) started outside the instance (podman's default network), filled over IMAP with a few folders
and a few hundred messages with flags. After run-sync-job the local mailbox holds the same
folders, messages (by Message-ID) and flags; a second run copies only what is new; a wrong
remote password is reported on the job and changes nothing locally.
"""

from __future__ import annotations

import imaplib
import json
import os
import re
import subprocess
import time

import pytest
from conftest import MAILCTL
from protocol import HOST, OUTSIDE_NETWORK, imaps

pytestmark = pytest.mark.containers

OLD_PORT = int(os.environ.get("MAIL_TEST_OLD_IMAP_PORT", "3880"))  # the old server, published for the test
OLD_USER, OLD_PASSWORD = "olduser", "Old-imap-pass1"
USER, PASSWORD = "syncuser", "Sync-pass-1"
FOLDERS = {"INBOX": 150, "Archive": 100, "Archive/2019": 50}
OLD_CONF = """protocols = imap
listen = *
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:/srv/mail/%u
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN /etc/old/passwd
}
userdb {
  driver = static
  args = uid=5000 gid=5000 home=/srv/mail/%u
}
namespace inbox {
  inbox = yes
  separator = /
}
log_path = /dev/stderr
"""


def flags_of(fetched: bytes) -> str:
    found = re.search(rb"FLAGS \(([^)]*)\)", fetched).group(1).decode().split()
    return " ".join(sorted(f for f in found if f != "\\Recent"))


def content(conn: imaplib.IMAP4) -> dict[str, dict[str, str]]:
    """Folder -> Message-ID -> flags, for the folders of FOLDERS."""
    result = {}
    for folder in FOLDERS:
        typ, count = conn.select(f'"{folder}"', readonly=True)
        if typ != "OK":
            continue
        if count[0] == b"0":
            result[folder] = {}
            continue
        _, data = conn.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        result[folder] = {item[1].decode().split(":", 1)[1].strip(): flags_of(item[0])
                          for item in data if isinstance(item, tuple)}
    return result


def old_connection() -> imaplib.IMAP4:
    conn = imaplib.IMAP4(HOST, OLD_PORT, timeout=20)
    conn.login(OLD_USER, OLD_PASSWORD)
    return conn


def append(conn: imaplib.IMAP4, folder: str, start: int, count: int, tag: str) -> None:
    for i in range(start, start + count):
        flags = [f for f, every in (("\\Seen", 3), ("\\Flagged", 7), ("$Label1", 11), ("\\Answered", 13))
                 if i % every == 0]
        msg = (f"From: old@example.net\r\nTo: {OLD_USER}@example.org\r\nSubject: {tag} {folder} {i}\r\n"
               f"Message-ID: <{tag}-{folder.replace('/', '-')}-{i}@old.example.net>\r\n\r\nmessage {i}\r\n")
        conn.append(f'"{folder}"', f"({' '.join(flags)})" if flags else None, None, msg.encode())


@pytest.fixture(scope="module")
def old_server(mail, tmp_path_factory):
    """The old Dovecot, outside the instance (OUTSIDE_NETWORK), published on OLD_PORT for filling it."""
    conf = tmp_path_factory.mktemp("oldimap")
    (conf / "dovecot.conf").write_text(OLD_CONF)
    (conf / "passwd").write_text(f"{OLD_USER}:{{PLAIN}}{OLD_PASSWORD}\n")
    for path in (conf, conf / "dovecot.conf", conf / "passwd"):  # dovecot's auth process reads them
        path.chmod(0o755 if path.is_dir() else 0o644)
    name = f"{mail.instance}-oldimap"
    subprocess.run(["podman", "rm", "-f", name], capture_output=True)
    image = subprocess.run(["podman", "inspect", f"{mail.instance}-dovecot", "--format", "{{.ImageName}}"],
                           capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([
        "podman", "run", "-d", "--name", name, "--network", OUTSIDE_NETWORK,
        "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=8192:8192",
        "-p", f"127.0.0.1:{OLD_PORT}:143", "-v", f"{conf}:/etc/old:ro,Z", image,
        "bash", "-c", "mkdir -p /srv/mail && chown 5000:5000 /srv/mail && exec dovecot -F -c /etc/old/dovecot.conf",
    ], capture_output=True, text=True, check=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = old_connection()
                break
            except (OSError, imaplib.IMAP4.error):
                assert time.monotonic() < deadline, "the old IMAP server did not start"
                time.sleep(0.5)
        for folder, count in FOLDERS.items():
            if folder != "INBOX":
                conn.create(f'"{folder}"')
            append(conn, folder, 0, count, "first")
        conn.logout()
        address = subprocess.run(["podman", "inspect", name, "--format",
                                  "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        yield address
    finally:
        subprocess.run(["podman", "rm", "-f", name], capture_output=True)


@pytest.fixture(scope="module")
def job(mail, old_server):
    mail.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": "example.org"})
    mail.run("add-user", {"user": USER, "password": PASSWORD})
    out = mail.run("add-sync-job", {"localuser": USER, "remotehost": old_server, "remoteport": 143,
                                    "security": "none", "remoteuser": OLD_USER, "remotepassword": OLD_PASSWORD})
    yield out["job_id"]
    mail.run("remove-sync-job", {"job_id": out["job_id"]}, expect=None)
    mail.run("remove-user", {"user": USER}, expect=None)


def local_content(mail) -> dict[str, dict[str, str]]:
    with imaps(mail, USER, PASSWORD) as conn:
        return content(conn)


def remote_content() -> dict[str, dict[str, str]]:
    conn = old_connection()
    try:
        return content(conn)
    finally:
        conn.logout()


def test_first_run_copies_folders_messages_and_flags(mail, job):
    status = mail.run("run-sync-job", {"job_id": job})
    assert status["state"] == "done", status
    assert status["messages_added"] == sum(FOLDERS.values())
    remote = remote_content()
    assert {f: len(m) for f, m in remote.items()} == FOLDERS
    assert local_content(mail) == remote
    assert sum("\\Flagged" in f for f in remote["INBOX"].values()) == 22  # flags were set: the check means something


def test_second_run_copies_only_what_is_new(mail, job):
    conn = old_connection()
    append(conn, "Archive", 1000, 5, "later")
    conn.select('"INBOX"')
    conn.store("2", "+FLAGS", "(\\Flagged)")  # a flag changed on the old server
    conn.logout()
    status = mail.run("run-sync-job", {"job_id": job})
    assert status["state"] == "done", status
    assert status["messages_added"] == 5
    local = local_content(mail)
    assert local == remote_content()
    assert len(local["Archive"]) == FOLDERS["Archive"] + 5


def test_wrong_remote_password_is_reported_and_changes_nothing(mail, job):
    before = local_content(mail)
    conn = old_connection()
    append(conn, "INBOX", 2000, 3, "unseen")
    conn.logout()
    mail.run("alter-sync-job", {"job_id": job, "remotepassword": "not-the-password"})
    try:
        status = mail.run("run-sync-job", {"job_id": job})
        assert status["state"] == "failed" and "authentication" in status["error"]
        assert status["messages_added"] == 0
        listed = {j["job_id"]: j for j in mail.run("list-sync-jobs")}
        assert listed[job]["status"]["state"] == "failed"
        assert local_content(mail) == before
    finally:
        mail.run("alter-sync-job", {"job_id": job, "remotepassword": OLD_PASSWORD})


def test_passwords_never_shown_and_bad_input_refused(mail, job):
    listed = mail.run("list-sync-jobs")
    text = json.dumps(listed)
    assert OLD_PASSWORD not in text and "not-the-password" not in text
    assert "remotepassword" not in listed[0]
    secret = mail.state_dir / mail.instance / "secrets" / "imapsync" / job
    assert secret.read_text() == OLD_PASSWORD and secret.stat().st_mode & 0o777 == 0o600
    r = mail.run("add-sync-job", {"localuser": "nosuchuser", "remotehost": "old.example.net",
                                  "remoteuser": "x", "remotepassword": "y"}, expect=10)
    assert json.loads(r.stdout)[0]["field"] == "localuser"
    r = mail.run("run-sync-job", {"job_id": "00000000"}, expect=10)
    assert json.loads(r.stdout)[0]["error"] == "job_not_found"
    r = mail.run("add-sync-job", {"localuser": USER, "remotehost": "old example", "remoteuser": "x",
                                  "remotepassword": "y", "security": "ssl3"}, expect=10)
    assert {e["field"] for e in json.loads(r.stdout)} == {"remotehost", "security"}
    assert len(mail.run("list-sync-jobs")) == len(listed)  # nothing added


def test_included_folders_only(mail, job, old_server):
    mail.run("add-user", {"user": "syncpart", "password": PASSWORD})
    out = mail.run("add-sync-job", {"localuser": "syncpart", "remotehost": old_server, "remoteport": 143,
                                    "security": "none", "remoteuser": OLD_USER, "remotepassword": OLD_PASSWORD,
                                    "folders_include": ["Archive"]})
    try:
        status = mail.run("run-sync-job", {"job_id": out["job_id"]})
        assert status["state"] == "done", status
        with imaps(mail, "syncpart", PASSWORD) as conn:
            local = content(conn)
        assert local["Archive"] == remote_content()["Archive"]
        assert local.get("INBOX") == {} and "Archive/2019" not in local
    finally:
        mail.run("remove-sync-job", {"job_id": out["job_id"]}, expect=None)
        mail.run("remove-user", {"user": "syncpart"}, expect=None)


def test_watch_runs_a_due_one_shot_job(mail, job, old_server):
    """`mailctl watch` (the scheduler) runs a one-shot job never run, then leaves it alone."""
    mail.run("add-user", {"user": "syncwatch", "password": PASSWORD})
    out = mail.run("add-sync-job", {"localuser": "syncwatch", "remotehost": old_server, "remoteport": 143,
                                    "security": "none", "remoteuser": OLD_USER, "remotepassword": OLD_PASSWORD,
                                    "folders_include": ["Archive/2019"]})
    watch = subprocess.Popen([MAILCTL, "watch", "--interval", "2"], env=mail.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def state():
            return {j["job_id"]: j for j in mail.run("list-sync-jobs")}[out["job_id"]]["status"]
        deadline = time.monotonic() + 60
        while state()["state"] != "done":
            assert time.monotonic() < deadline, f"the watcher did not run the job: {state()}"
            time.sleep(1)
        assert state()["messages_added"] == FOLDERS["Archive/2019"]
    finally:
        watch.terminate()
        watch.wait(timeout=30)
        mail.run("remove-sync-job", {"job_id": out["job_id"]}, expect=None)
        mail.run("remove-user", {"user": "syncwatch"}, expect=None)


def test_delete_remote_moves_the_copied_messages(mail, job, old_server):
    """With delete_remote the messages copied are deleted on the old server, only there and only those."""
    conn = old_connection()
    conn.create('"Move"')
    append(conn, "Move", 0, 20, "move")
    conn.logout()
    kept, first_user = remote_content(), local_content(mail)
    mail.run("add-user", {"user": "syncmove", "password": PASSWORD})
    out = mail.run("add-sync-job", {"localuser": "syncmove", "remotehost": old_server, "remoteport": 143,
                                    "security": "none", "remoteuser": OLD_USER, "remotepassword": OLD_PASSWORD,
                                    "folders_include": ["Move"], "delete_remote": True})
    try:
        status = mail.run("run-sync-job", {"job_id": out["job_id"]})
        assert status["state"] == "done", status
        assert status["messages_added"] == 20
        with imaps(mail, "syncmove", PASSWORD) as local:
            local.select('"Move"', readonly=True)
            _, data = local.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        ids = {item[1].decode().split(":", 1)[1].strip() for item in data if isinstance(item, tuple)}
        assert ids == {f"<move-Move-{i}@old.example.net>" for i in range(20)}
        conn = old_connection()
        _, count = conn.select('"Move"', readonly=True)
        conn.logout()
        assert count[0] == b"0"  # deleted on the old server
        assert remote_content() == kept  # and nothing else there
        assert local_content(mail) == first_user  # another local user's mail untouched
    finally:
        mail.run("remove-sync-job", {"job_id": out["job_id"]}, expect=None)
        mail.run("remove-user", {"user": "syncmove"}, expect=None)
