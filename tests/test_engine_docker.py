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
import time
from pathlib import Path

import pytest
from conftest import ROOT, TEST_OFFSET_DELTA, TEST_PREFIX, Cli
from protocol import HOST, daemon_address, insecure_tls, sieve_greeting

pytestmark = [pytest.mark.containers, pytest.mark.docker]

INSTANCE = TEST_PREFIX + "dk1"
OFFSET = 24000 + TEST_OFFSET_DELTA


def _docker(*args: str) -> list[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.split()


def _leftovers() -> dict[str, list[str]]:
    """Containers, networks and volumes of the engine whose name starts with dk1."""
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


def test_down_purge_leaves_nothing(dk1):
    """Last test of the module: it takes the instance down."""
    r = dk1("down", "--purge", "--engine", "docker")
    assert r.code == 0, r.stderr
    assert _leftovers() == {"containers": [], "networks": [], "volumes": []}
    assert not (dk1.state_dir / INSTANCE).exists()
