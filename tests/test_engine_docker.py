"""The whole stack on the Docker engine: up, every daemon healthy and greeting, down --purge.

Runs instance dk1 on 127.0.0.1 with ports +24000 through `mailctl --engine docker` (both with
the run's MAIL_TEST_PREFIX and MAIL_TEST_OFFSET_DELTA, like every test instance). The
Docker daemon is started by tests/start-dockerd.sh when none answers; the test is skipped,
with that script's reason, only when dockerd cannot start.
"""

from __future__ import annotations

import imaplib
import os
import poplib
import shutil
import smtplib
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import ROOT, TEST_OFFSET_DELTA, TEST_PREFIX, Cli
from protocol import HOST, daemon_address, insecure_tls, message, message_ids, sieve_greeting, smtp_send, wait_for

pytestmark = [pytest.mark.containers, pytest.mark.docker]

INSTANCE = TEST_PREFIX + "dk1"
OFFSET = 24000 + TEST_OFFSET_DELTA
PASSWORD = "Docker-Pass-4711"
USERS = ("dkann", "dkben")
STREAM = 40  # messages sent while dovecot and postfix are killed


def _docker(*args: str) -> list[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.split()


def _leftovers() -> dict[str, list[str]]:
    """Containers, networks and volumes of the engine whose name starts with the instance's."""
    found = {
        "containers": _docker("ps", "-a", "--format", "{{.Names}}"),
        "networks": _docker("network", "ls", "--format", "{{.Name}}"),
        "volumes": _docker("volume", "ls", "--format", "{{.Name}}"),
    }
    return {kind: [n for n in names if n.startswith(INSTANCE)] for kind, names in found.items()}


def _remove_leftovers() -> None:
    """Clean what an interrupted run left behind (by label and by name)."""
    left = _leftovers()
    if left["containers"]:
        subprocess.run(["docker", "rm", "-f", "-v", *left["containers"]], capture_output=True, check=False)
    if left["networks"]:
        subprocess.run(["docker", "network", "rm", *left["networks"]], capture_output=True, check=False)
    if left["volumes"]:
        subprocess.run(["docker", "volume", "rm", "-f", *left["volumes"]], capture_output=True, check=False)


@pytest.fixture(scope="module")
def dk1():
    started = subprocess.run([str(ROOT / "tests/start-dockerd.sh")], capture_output=True, text=True,
                             check=False, timeout=120)
    if started.returncode != 0:
        pytest.skip(f"no Docker engine: {started.stderr.strip() or started.stdout.strip()}")
    built = subprocess.run([str(ROOT / "build-images.sh"), "--docker"], capture_output=True, text=True,
                           check=False, timeout=1800)
    assert built.returncode == 0, f"build-images.sh --docker failed:\n{built.stdout}\n{built.stderr}"

    _remove_leftovers()
    state = Path(tempfile.mkdtemp(prefix=f"mail-{INSTANCE}-"))
    cli = Cli(INSTANCE, state, OFFSET, engine="docker")
    try:
        r = cli("up", "--engine", "docker", timeout=400)
        assert r.code == 0, f"mailctl up --engine docker failed:\n{r.stderr}"
        yield cli
    finally:
        cli("down", "--purge", "--engine", "docker")
        _remove_leftovers()
        shutil.rmtree(state, ignore_errors=True)


def test_every_daemon_healthy(dk1):
    r = dk1("status", "--json", "--engine", "docker")
    assert r.code == 0, r.stderr
    rows = r.json()
    assert {row["daemon"] for row in rows} == {"redis", "openldap", "clamav", "rspamd", "dovecot", "postfix"}
    for row in rows:
        assert row["name"] == f"{INSTANCE}-{row['daemon']}"
        assert (row["state"], row["health"]) == ("running", "healthy"), row


def test_smtp_banner(dk1):
    with smtplib.SMTP(HOST, dk1.port(25), timeout=10) as smtp:
        code, _ = smtp.noop()
        assert code == 250
        assert smtp.ehlo()[0] == 250
    # smtplib does not keep the banner: read it raw
    with smtplib.SMTP(timeout=10) as smtp:
        code, banner = smtp.connect(HOST, dk1.port(25))
        assert code == 220, banner
        assert b"ESMTP" in banner


def test_imap_greeting(dk1):
    imap = imaplib.IMAP4(HOST, dk1.port(143), timeout=10)
    try:
        assert imap.welcome.startswith(b"* OK"), imap.welcome
        assert "STARTTLS" in imap.capabilities
    finally:
        imap.logout()


def test_imaps_greeting(dk1):
    imap = imaplib.IMAP4_SSL(HOST, dk1.port(993), ssl_context=insecure_tls(), timeout=10)
    try:
        assert imap.welcome.startswith(b"* OK"), imap.welcome
    finally:
        imap.logout()


def test_pop3_greeting(dk1):
    pop = poplib.POP3(HOST, dk1.port(110), timeout=10)
    try:
        assert pop.getwelcome().startswith(b"+OK")
    finally:
        pop.quit()


def test_managesieve_greeting(dk1):
    greeting = sieve_greeting(dk1.port(4190))
    assert "IMPLEMENTATION" in greeting, greeting
    assert "\r\nOK" in greeting


def test_a_crashed_daemon_is_restarted_by_docker_and_keeps_its_address(dk1):
    """The restart policy on Docker; the fixed address (in every /etc/hosts) survives, so
    postfix reaches the restarted dovecot and never has to look its name up."""
    name = f"{INSTANCE}-dovecot"
    address = [daemon_address(INSTANCE, "dovecot", engine="docker")]
    pid = _docker("inspect", "-f", "{{.State.Pid}}", name)[0]
    os.kill(int(pid), 9)
    deadline = time.monotonic() + 60
    while True:
        rows = {row["daemon"]: row for row in dk1("status", "--json", "--engine", "docker").json()}
        if rows["dovecot"]["health"] == "healthy":
            break
        assert time.monotonic() < deadline, rows["dovecot"]
        time.sleep(1)
    assert rows["dovecot"]["restarts"] == 1
    assert [daemon_address(INSTANCE, "dovecot", engine="docker")] == address
    assert f"{address[0]}\tdovecot" in subprocess.run(["docker", "exec", f"{INSTANCE}-postfix", "cat", "/etc/hosts"],
                                                      capture_output=True, text=True).stdout


def _docker_status(cli: Cli) -> dict[str, dict]:
    return {row["daemon"]: row for row in cli("status", "--json", "--engine", "docker").json()}


def test_kill_9_of_dovecot_and_postfix_during_a_stream_loses_and_duplicates_nothing(dk1):
    """Docker's restart policy brings both back without any command from the test; every
    message accepted with 250 (a refused one is sent again, as a sending MTA would) is in its
    mailbox exactly once (the podman version, with every daemon: test_self_healing.py)."""
    dk1.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local",
                                 "mail_domain": "example.org"})
    for user in USERS:
        dk1.run("add-user", {"user": user, "password": PASSWORD, "display_name": user})
    before = {d: row["restarts"] for d, row in _docker_status(dk1).items()}
    accepted: dict[str, str] = {}  # Message-ID -> user
    retried: list[int] = []

    def send(n: int) -> None:
        for seq in range(n, STREAM, 4):  # 4 sessions, one message every 2 s each
            user = USERS[seq % len(USERS)]
            msg = message("someone@example.net", f"{user}@example.org", f"docker stream {seq}")
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    code, _ = smtp_send(dk1, msg)
                except (OSError, smtplib.SMTPException):
                    code = 0  # postfix is restarting
                if code == 250:
                    accepted[msg["Message-ID"]] = user
                    break
                retried.append(code)
                time.sleep(1)
            time.sleep(2)

    senders = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for t in senders:
        t.start()
    for daemon in ("dovecot", "postfix"):
        time.sleep(5)
        pid = _docker("inspect", "-f", "{{.State.Pid}}", f"{INSTANCE}-{daemon}")[0]
        os.kill(int(pid), 9)
    for t in senders:
        t.join()

    def all_healthy():
        rows = _docker_status(dk1)
        return rows if all(row["health"] == "healthy" for row in rows.values()) else None

    rows = wait_for(all_healthy, "every daemon healthy after the kills", timeout=90)
    assert all(rows[d]["restarts"] > before[d] for d in ("dovecot", "postfix")), (before, rows)

    def delivered(complete: bool = True) -> Counter | None:
        found: Counter = Counter()
        for user in USERS:
            found.update(message_ids(dk1, user, PASSWORD))
        return found if not complete or all(found[mid] for mid in accepted) else None

    wait_for(delivered, "every accepted message delivered", timeout=120)
    time.sleep(3)  # a duplicate would have had time to arrive
    found = delivered(complete=False)
    duplicated = {mid: n for mid, n in found.items() if n > 1}
    print(f"\ndocker kill test: {STREAM} messages, accepted {len(accepted)}, refused attempts retried"
          f" {len(retried)}, delivered once {sum(1 for mid in accepted if found[mid] == 1)},"
          f" duplicated {len(duplicated)}, restarts {({d: rows[d]['restarts'] for d in ('dovecot', 'postfix')})}")
    assert len(accepted) == STREAM, f"only {len(accepted)} of {STREAM} accepted (refusals: {retried})"
    assert all(found[mid] == 1 for mid in accepted) and not duplicated, duplicated


def test_down_purge_leaves_nothing(dk1):
    """Last test of the module: it takes the instance down."""
    r = dk1("down", "--purge", "--engine", "docker")
    assert r.code == 0, r.stderr
    assert _leftovers() == {"containers": [], "networks": [], "volumes": []}
    assert not (dk1.state_dir / INSTANCE).exists()
