"""down removes containers and network, keeps volumes; up reuses them; --purge removes all."""

from __future__ import annotations

import imaplib
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.containers


def _podman(*args: str) -> list[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=True).stdout.split()


def test_down_keeps_volumes_and_up_reuses_them(fresh_instance):
    tl = fresh_instance("tl1", 22000)
    name = tl.instance  # with the run's MAIL_TEST_PREFIX
    label = f"label=mail.instance={name}"
    volumes = set(_podman("volume", "ls", "-q", "--filter", label))
    assert {f"{name}-vmail", f"{name}-queue", f"{name}-ldap", f"{name}-redis"} <= volumes
    # leave a mark in a volume to prove the same one comes back
    r = subprocess.run(["podman", "exec", f"{name}-dovecot", "sh", "-c", "echo kept > /var/lib/vmail/mark"])
    assert r.returncode == 0

    assert tl("down").code == 0
    assert _podman("ps", "-aq", "--filter", label) == []
    assert not [n for n in _podman("network", "ls", "--format", "{{.Name}}") if n == name or n.startswith(f"{name}-")]
    assert set(_podman("volume", "ls", "-q", "--filter", label)) == volumes

    r = tl("up", timeout=300)
    assert r.code == 0, r.stderr
    out = subprocess.run(["podman", "exec", f"{name}-dovecot", "cat", "/var/lib/vmail/mark"],
                         capture_output=True, text=True).stdout
    assert out.strip() == "kept"

    assert tl("down", "--purge").code == 0
    assert _podman("volume", "ls", "-q", "--filter", label) == []
    assert not (tl.state_dir / name).exists()


def test_up_fails_with_the_daemons_last_log_lines(fresh_instance):
    """A corrupt LDAP database: `up` exits non-zero and shows openldap's last log lines."""
    tb = fresh_instance("tb9", 22500, up=False)
    version = (Path(__file__).resolve().parents[1] / "VERSION").read_text().strip()
    ldap_volume = f"{tb.instance}-ldap"
    subprocess.run(["podman", "volume", "create", "--label", f"mail.instance={tb.instance}", ldap_volume],
                   check=True, capture_output=True)
    subprocess.run(["podman", "run", "--rm", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=8192:8192",
                    "-v", f"{ldap_volume}:/v", f"localhost/mail-base:{version}", "sh", "-c",
                    "head -c 65536 /dev/urandom > /v/data.mdb"], check=True, capture_output=True)
    r = tb("up", "--timeout", "60", timeout=200)
    assert r.code != 0
    assert "openldap did not come up" in r.stderr, r.stderr
    assert "Last log lines" in r.stderr


def test_up_on_all_addresses_answers_on_loopback(fresh_instance):
    """The README's default (no --bind): ports published on every address, loopback included."""
    tw = fresh_instance("tw1", 22700, up=False)
    tw.bind = ""
    r = tw("up", timeout=300)
    assert r.code == 0, r.stderr
    assert all(row["health"] == "healthy" for row in tw("status", "--json").json())
    with imaplib.IMAP4("127.0.0.1", tw.port(143), timeout=10) as m:
        assert "STARTTLS" in m.capabilities
