"""Self-healing and zero loss: crashed daemons come back by themselves, a dependency's
outage defers mail (never loses or bounces it), and mail accepted with 250 while every
daemon is killed in turn is delivered exactly once.

The instance is this module's own (MAIL_TEST_HEAL_OFFSET, default 20500: every published
port stays below 32768), removed at the end. A "crash" is a SIGKILL of the container's
main process from the host, as the kernel's OOM killer or a segfault would end it; an
outage the test controls is `podman stop` (an operator's stop: the engine leaves it
stopped until the test starts it again).
"""

from __future__ import annotations

import email
import imaplib
import os
import random
import shutil
import smtplib
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import MAILCTL, TEST_OFFSET_DELTA, TEST_PREFIX, Cli, _engine_leftovers
from protocol import HOST, insecure_tls, message, message_ids, smtp_send, wait_for

pytestmark = pytest.mark.containers

OFFSET = int(os.environ.get("MAIL_TEST_HEAL_OFFSET", "20500")) + TEST_OFFSET_DELTA
PASSWORD = "Heal-Pass-4711"
USERS = ("healann", "healben", "healcid", "healdot")
BOUNCES = "healbounce"  # the stream's sender: any bounce lands in its mailbox
DAEMONS = ("dovecot", "rspamd", "clamav", "redis", "openldap", "postfix")


@pytest.fixture(scope="module")
def heal() -> Cli:
    """A running instance with a few mailboxes in example.org."""
    name = TEST_PREFIX + "hh1"
    _engine_leftovers(name)
    cli = Cli(name, Path(tempfile.mkdtemp(prefix=f"mail-{name}-")), OFFSET)
    try:
        r = cli("up", timeout=300)
        assert r.code == 0, f"mailctl up failed:\n{r.stderr}"
        cli.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local",
                                     "mail_domain": "example.org"})
        for user in (*USERS, BOUNCES):
            cli.run("add-user", {"user": user, "password": PASSWORD, "display_name": user})
        yield cli
    finally:
        cli("down", "--purge")
        _engine_leftovers(name)
        shutil.rmtree(cli.state_dir, ignore_errors=True)


# ---- helpers ---------------------------------------------------------------------------


def crash(cli: Cli, daemon: str) -> None:
    """SIGKILL the container's main process (the whole container dies with it)."""
    pid = subprocess.run(["podman", "inspect", "-f", "{{.State.Pid}}", f"{cli.instance}-{daemon}"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert pid not in ("", "0"), f"{daemon} is not running"
    os.kill(int(pid), 9)


def podman(*args: str) -> None:
    subprocess.run(["podman", *args], check=True, capture_output=True)


def status(cli: Cli) -> dict[str, dict]:
    r = cli("status", "--json")
    return {row["daemon"]: row for row in r.json()}


def all_healthy(cli: Cli) -> dict[str, dict] | None:
    """Every daemon's status row once all are healthy, else None. While `mailctl watch` or the
    engine recreates a container, `status` may fail for a moment: that is "not yet"."""
    r = cli("status", "--json")
    if r.code != 0:
        print(f"mailctl status exited {r.code}: {r.stderr.strip()[-300:]}")
    else:
        rows = {row["daemon"]: row for row in r.json()}
        if all(row["health"] == "healthy" for row in rows.values()):
            return rows
    time.sleep(1)  # `mailctl status` execs every healthcheck: ask once a second at most
    return None


def copies(cli: Cli, user: str, message_id: str) -> int:
    """How many copies of `message_id` `user` has; 0 while IMAP does not answer yet."""
    try:
        return message_ids(cli, user, PASSWORD)[message_id]
    except (OSError, imaplib.IMAP4.error):
        return 0


def bounced_ids(cli: Cli) -> dict[str, str]:
    """Message-ID -> reason, from the delivery status notifications in BOUNCES' mailbox."""
    found = {}
    conn = imaplib.IMAP4_SSL(HOST, cli.port(993), ssl_context=insecure_tls(), timeout=30)
    try:
        conn.login(BOUNCES, PASSWORD)
        conn.select("INBOX", readonly=True)
        _, nums = conn.search(None, "ALL")
        for num in nums[0].split():
            _, data = conn.fetch(num, "(RFC822)")
            dsn = email.message_from_bytes(data[0][1])
            reason, original = "", None
            for part in dsn.walk():
                if part.get_content_type() == "message/delivery-status":
                    reason = " ".join(str(p.get("Diagnostic-Code", "")) for p in part.get_payload())
                elif part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
                    payload = part.get_payload()
                    inner = payload[0] if isinstance(payload, list) else email.message_from_string(payload)
                    original = inner["Message-ID"]
            if original:
                found[original] = reason
    finally:
        conn.logout()
    return found


def queue_size(cli: Cli) -> int:
    out = cli.exec("postfix", "postqueue", "-j")
    return len([line for line in out.splitlines() if line.strip()])


# ---- a crashed daemon comes back ------------------------------------------------------


def test_a_crashed_daemon_comes_back_by_itself_and_status_counts_the_restart(heal):
    before = status(heal)["dovecot"]["restarts"]
    crash(heal, "dovecot")
    rows = wait_for(lambda: all_healthy(heal), "every daemon healthy after dovecot was killed", timeout=60)
    assert rows["dovecot"]["restarts"] == before + 1, rows["dovecot"]
    assert rows["dovecot"]["state"] == "running"
    text = heal("status")
    assert text.code == 0 and "RESTARTS" in text.stdout
    line = next(line for line in text.stdout.splitlines() if line.startswith(f"{heal.instance}-dovecot"))
    assert line.split()[-1] == str(before + 1), line


def test_a_message_sent_again_with_the_same_message_id_is_stored_once(heal):
    """What keeps a delivery retried after a crash from making a second copy (sieve
    `duplicate`): here a client sends the same message twice."""
    msg = message("someone@example.net", f"{USERS[0]}@example.org", "sent twice")
    assert smtp_send(heal, msg) == (250, "") and smtp_send(heal, msg) == (250, "")
    wait_for(lambda: copies(heal, USERS[0], msg["Message-ID"]) == 1, "the first copy")
    time.sleep(3)  # the second one has had time to arrive
    assert copies(heal, USERS[0], msg["Message-ID"]) == 1


def test_a_burst_to_one_mailbox_sent_again_is_stored_once(heal):
    """Dovecot rewrites a mailbox's whole duplicate database at each delivery: two deliveries
    to one mailbox at once lost a record (15 of 30 here), and the retry of that message was
    stored twice. Postfix now delivers to one recipient at a time (main.cf)."""
    user = USERS[1]
    burst = [message("someone@example.net", f"{user}@example.org", f"burst {n}") for n in range(30)]
    answers: list[tuple[int, str]] = []
    senders = [threading.Thread(target=lambda m=m: answers.append(smtp_send(heal, m))) for m in burst]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    assert answers == [(250, "")] * len(burst), answers
    ids = {m["Message-ID"] for m in burst}
    wait_for(lambda: ids <= set(message_ids(heal, user, PASSWORD)) or time.sleep(1), "the burst delivered",
             timeout=120)
    for m in burst:  # each message again, as a client that lost the 250 would send it
        assert smtp_send(heal, m) == (250, "")
    # Every resent copy has been delivered (or discarded as a duplicate) once the queue is empty.
    wait_for(lambda: queue_size(heal) == 0 or time.sleep(1), "the resent copies delivered", timeout=120)
    stored = message_ids(heal, user, PASSWORD)
    twice = sorted(mid for mid in ids if stored[mid] != 1)
    print(f"\nburst of {len(burst)} to one mailbox, sent again: {len(twice)} not stored exactly once")
    assert not twice, [(mid, stored[mid]) for mid in twice[:5]]


# ---- dependency faults defer, never lose or bounce ------------------------------------


def deferred_while_down(heal, daemon: str, user: str, label: str) -> tuple[int, str]:
    """Stop `daemon`, send one message to `user`: return the SMTP answer. Then start the daemon
    again and check that the same message is accepted and delivered exactly once."""
    podman("stop", "-t", "2", f"{heal.instance}-{daemon}")
    try:
        msg = message("someone@example.net", f"{user}@example.org", f"{daemon} down")
        answer = smtp_send(heal, msg)
    finally:
        podman("start", f"{heal.instance}-{daemon}")
    wait_for(lambda: all_healthy(heal), f"{daemon} healthy again", timeout=60)
    assert wait_for(lambda: smtp_send(heal, msg)[0] == 250, f"the same message accepted once {label} is back")
    wait_for(lambda: copies(heal, user, msg["Message-ID"]) == 1, f"delivery after {label} came back")
    return answer


def test_ldap_down_defers_at_rcpt_and_mail_flows_when_it_is_back(heal):
    code, text = deferred_while_down(heal, "openldap", USERS[0], "LDAP")
    assert 400 <= code < 500, (code, text)


def test_clamav_down_defers_instead_of_passing_mail_unscanned(heal):
    code, text = deferred_while_down(heal, "clamav", USERS[1], "ClamAV")
    assert (code, text[:5]) == (451, "4.7.1"), (code, text)


def test_redis_down_mail_still_flows_and_status_reports_it(heal):
    podman("stop", "-t", "2", f"{heal.instance}-redis")
    try:
        msg = message("someone@example.net", f"{USERS[2]}@example.org", "redis down")
        assert smtp_send(heal, msg) == (250, "")
        wait_for(lambda: copies(heal, USERS[2], msg["Message-ID"]) == 1, "delivery while redis is down")
        rows = status(heal)
        assert rows["redis"]["health"] == "stopped", rows["redis"]
        assert heal("status").code == 1, "status must fail while a daemon is down"
    finally:
        podman("start", f"{heal.instance}-redis")
    wait_for(lambda: all_healthy(heal), "redis healthy again", timeout=60)


def test_dovecot_down_queues_mail_and_it_is_delivered_seconds_after_dovecot_is_back(heal):
    """Not at postfix's next queue run (5 min): depwatch flushes the queue once LMTP answers."""
    podman("stop", "-t", "2", f"{heal.instance}-dovecot")
    try:
        msg = message("someone@example.net", f"{USERS[3]}@example.org", "dovecot down")
        assert smtp_send(heal, msg) == (250, "")
        wait_for(lambda: "deferred" in heal.exec("postfix", "postqueue", "-j"), "the message deferred", timeout=30)
    finally:
        podman("start", f"{heal.instance}-dovecot")
    started = time.monotonic()
    wait_for(lambda: copies(heal, USERS[3], msg["Message-ID"]) == 1, "delivery after dovecot came back",
             timeout=60)
    print(f"\ndelivered {time.monotonic() - started:.1f} s after dovecot was started again")
    assert "depwatch: flushing the deferred queue" in subprocess.run(
        ["podman", "logs", f"{heal.instance}-postfix"], capture_output=True, text=True).stdout


# ---- mailctl watch: what the engine's restart policy does not bring back ----------------


@pytest.fixture
def watcher(heal):
    """`mailctl watch --interval 1` for the instance, as its systemd unit runs it."""
    proc = subprocess.Popen([MAILCTL, "watch", "--interval", "1"], env=heal.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    yield proc
    proc.terminate()
    proc.wait(timeout=30)


def test_watch_brings_back_a_container_killed_through_the_engine(heal, watcher):
    """`podman kill` is a wanted stop for the engine (no restart); for mailctl, whose only
    stop is `down` (containers removed), it is not."""
    podman("kill", "-s", "KILL", f"{heal.instance}-dovecot")
    wait_for(lambda: status(heal)["dovecot"]["state"] != "running" or None, "dovecot killed", timeout=10)
    wait_for(lambda: all_healthy(heal), "dovecot brought back by mailctl watch", timeout=90)


def test_watch_recreates_a_container_whose_conmon_died(heal, watcher):
    """Without conmon podman shows a dead container as running and cannot restart it."""
    name = f"{heal.instance}-rspamd"
    conmon = subprocess.run(["podman", "inspect", "-f", "{{.State.ConmonPid}}", name],
                            capture_output=True, text=True, check=True).stdout.strip()
    os.kill(int(conmon), 9)
    crash(heal, "rspamd")
    wait_for(lambda: all_healthy(heal), "rspamd recreated by mailctl watch", timeout=120)
    watcher.terminate()
    assert f"{name} is dead: bringing it back" in watcher.communicate(timeout=30)[1]


# ---- the kill test --------------------------------------------------------------------

STREAM = int(os.environ.get("MAIL_TEST_KILL_MESSAGES", "300"))
SESSIONS = 10


class Stream:
    """SESSIONS threads send STREAM messages to USERS, paced over `seconds`. A refused or
    interrupted message is sent again (same Message-ID) as a sending MTA would, until 250
    or the deadline."""

    def __init__(self, cli: Cli, seconds: float):
        self.cli, self.seconds = cli, seconds
        self.accepted: dict[str, str] = {}  # Message-ID -> recipient
        self.refused: Counter = Counter()  # reply code of each refused attempt
        self.retried = 0
        self.given_up: list[str] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        threads = [threading.Thread(target=self._session, args=(n,)) for n in range(SESSIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _session(self, n: int) -> None:
        start = time.monotonic()
        mine = range(n, STREAM, SESSIONS)
        for i, seq in enumerate(mine):
            time.sleep(max(0.0, start + i * self.seconds / len(mine) - time.monotonic()))
            to = f"{USERS[seq % len(USERS)]}@example.org"
            msg = message(f"{BOUNCES}@example.org", to, f"stream {seq}")
            deadline = time.monotonic() + 180
            while True:
                try:
                    code, _ = smtp_send(self.cli, msg)
                except (OSError, smtplib.SMTPException):
                    code = 0  # connection refused or lost: postfix is restarting
                if code == 250:
                    with self.lock:
                        self.accepted[msg["Message-ID"]] = to.split("@")[0]
                    break
                with self.lock:
                    self.refused[code] += 1
                    self.retried += 1
                if code >= 500 or time.monotonic() > deadline:
                    with self.lock:
                        self.given_up.append(f"{msg['Message-ID']}: {code}")
                    break
                time.sleep(1)


def test_kill_every_daemon_during_a_stream_loses_and_duplicates_nothing(heal):
    wait_for(lambda: all_healthy(heal), "a healthy instance", timeout=60)
    before = {d: row["restarts"] for d, row in status(heal).items()}
    stream = Stream(heal, seconds=60)
    sender = threading.Thread(target=stream.run)
    sender.start()
    killed = []
    for daemon in DAEMONS:  # one after another, each once it is back
        time.sleep(random.uniform(3, 6))
        crash(heal, daemon)
        killed.append(daemon)
        wait_for(lambda d=daemon: status(heal)[d]["health"] == "healthy" or time.sleep(1),
                 f"{daemon} back after kill -9", timeout=90)
    sender.join()

    # Nothing but time: every daemon must be healthy and the queue must drain.
    rows = wait_for(lambda: all_healthy(heal), "every daemon healthy after the kills", timeout=90)
    restarts = {d: rows[d]["restarts"] - before[d] for d in DAEMONS}
    assert all(restarts[d] >= 1 for d in killed), restarts

    def settled():
        delivered = Counter()
        for user in USERS:
            delivered.update(message_ids(heal, user, PASSWORD))
        missing = [mid for mid in stream.accepted if delivered[mid] == 0]
        # Done when all arrived, or when the queue is empty (what is missing then bounced or is lost).
        if not missing or queue_size(heal) == 0:
            return delivered, missing
        time.sleep(1)
        return None

    delivered, missing = wait_for(settled, "the queue to drain", timeout=180)
    bounced = bounced_ids(heal)
    lost = [mid for mid in missing if mid not in bounced]
    duplicated = {mid: n for mid, n in delivered.items() if mid in stream.accepted and n > 1}
    print(f"\nkill test: {STREAM} messages in {SESSIONS} sessions, killed {', '.join(killed)}"
          f"\n  accepted (250): {len(stream.accepted)}, refused attempts retried: {stream.retried}"
          f" {dict(stream.refused)}, given up: {len(stream.given_up)}"
          f"\n  delivered once: {sum(1 for mid in stream.accepted if delivered[mid] == 1)},"
          f" bounced: {len([m for m in missing if m in bounced])}, lost: {len(lost)},"
          f" duplicated: {len(duplicated)}\n  restarts: {restarts}")
    assert not lost, f"accepted but neither delivered nor bounced: {lost[:5]}"
    assert not duplicated, f"delivered more than once: {list(duplicated.items())[:5]}"
    assert all(bounced.get(mid) for mid in missing), "a bounce without a reason"
    assert not stream.given_up, stream.given_up[:5]
