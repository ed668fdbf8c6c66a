"""down removes containers and network, keeps volumes; up reuses them; --purge removes all."""

from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.containers


def _podman(*args: str) -> list[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=True).stdout.split()


def test_down_keeps_volumes_and_up_reuses_them(fresh_instance):
    tl = fresh_instance("tl1", 22000)
    volumes = set(_podman("volume", "ls", "-q", "--filter", "label=mail.instance=tl1"))
    assert {"tl1-vmail", "tl1-queue", "tl1-ldap", "tl1-redis"} <= volumes
    # leave a mark in a volume to prove the same one comes back
    r = subprocess.run(["podman", "exec", "tl1-dovecot", "sh", "-c", "echo kept > /var/lib/vmail/mark"])
    assert r.returncode == 0

    assert tl("down").code == 0
    assert _podman("ps", "-aq", "--filter", "label=mail.instance=tl1") == []
    assert "tl1" not in _podman("network", "ls", "--format", "{{.Name}}")
    assert set(_podman("volume", "ls", "-q", "--filter", "label=mail.instance=tl1")) == volumes

    r = tl("up", timeout=300)
    assert r.code == 0, r.stderr
    out = subprocess.run(["podman", "exec", "tl1-dovecot", "cat", "/var/lib/vmail/mark"],
                         capture_output=True, text=True).stdout
    assert out.strip() == "kept"

    assert tl("down", "--purge").code == 0
    assert _podman("volume", "ls", "-q", "--filter", "label=mail.instance=tl1") == []
    assert not (tl.state_dir / "tl1").exists()

