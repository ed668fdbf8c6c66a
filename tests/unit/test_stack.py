"""The stack definition and instance settings: pure data, no engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailctl.hostcheck import container_ulimits
from mailctl.settings import Instance
from mailctl.stack import DAEMONS, PORTS, build_stack


def make(**kw) -> Instance:
    return Instance(**{"name": "u1", "state_root": Path("/tmp/u1-state"), **kw})


def test_every_daemon_has_one_container_named_after_the_instance():
    stack = build_stack(make(), "mail.example.org")
    assert [c.daemon for c in stack.containers] == list(DAEMONS)
    assert {c.name for c in stack.containers} == {f"u1-{d}" for d in DAEMONS}
    assert all(c.home_network in c.networks and c.aliases == (c.daemon,) for c in stack.containers)
    assert all(c.image == f"localhost/mail-{c.daemon}:{make().version}" for c in stack.containers)


def test_ports_follow_offset_and_bind():
    stack = build_stack(make(port_offset=20000, bind="127.0.0.1"), "mail.example.org")
    published = {p.name: (p.host_ip, p.host_port, p.container_port) for c in stack.containers for p in c.ports}
    assert set(published) == set(PORTS) - {"rspamd"}  # Rspamd's UI is reached through `mailctl serve`
    assert published["smtp"] == ("127.0.0.1", 20025, 25)
    assert published["sieve"] == ("127.0.0.1", 24190, 4190)
    assert published["imaps"][1] == 20993


def test_rspamd_controller_published_only_on_request(monkeypatch):
    monkeypatch.setenv("MAIL_PUBLISH_RSPAMD", "1")
    stack = build_stack(make(port_offset=100), "mail.example.org")
    assert [(p.container_port, p.host_port) for p in stack.container("rspamd").ports] == [(11334, 11434)]
    monkeypatch.delenv("MAIL_PUBLISH_RSPAMD")
    assert build_stack(make(port_offset=100), "mail.example.org").container("rspamd").ports == ()


def test_volumes_are_per_instance_and_mounted_once():
    stack = build_stack(make(), "mail.example.org")
    assert set(stack.volumes) == {f"u1-{p}" for p in ("redis", "ldap", "clamav", "rspamd", "vmail", "queue")}
    for c in stack.containers:
        targets = [m.target for m in c.mounts]
        assert len(targets) == len(set(targets)), c.name
        assert any(m.target == "/config" and m.read_only for m in c.mounts)


def test_secrets_are_mounted_read_only_from_the_secrets_dir():
    inst = make()
    stack = build_stack(inst, "mail.example.org")
    for c in stack.containers:
        for m in c.mounts:
            if m.target.startswith("/run/secrets/"):
                assert m.read_only and m.source.startswith(str(inst.secrets_dir))


def test_spec_hash_changes_with_the_spec_only():
    a = build_stack(make(), "mail.example.org").container("postfix")
    b = build_stack(make(), "mail.example.org").container("postfix")
    c = build_stack(make(port_offset=1), "mail.example.org").container("postfix")
    assert a.labels["mail.spec-hash"] == b.labels["mail.spec-hash"] != c.labels["mail.spec-hash"]


def test_ulimits_respect_host_hard_limits_and_give_dovecot_nproc():
    import resource

    limits = {name: (soft, hard) for name, soft, hard in container_ulimits()}
    _, nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert "nofile" in limits and "nproc" in limits  # runc wants both in one call
    if nofile_hard != resource.RLIM_INFINITY:
        assert limits["nofile"][1] <= nofile_hard
    assert limits["nproc"][0] <= 8192


@pytest.mark.parametrize("bad", ["", "Upper", "1abc", "a" * 40, "with space"])
def test_instance_names_are_checked(bad):
    with pytest.raises(ValueError):
        make(name=bad)


def test_port_offset_range():
    with pytest.raises(ValueError):
        make(port_offset=70000)


def test_env_vars_configure_the_instance(monkeypatch):
    monkeypatch.setenv("MAIL_INSTANCE", "envi")
    monkeypatch.setenv("MAIL_STATE_DIR", "/tmp/envstate")
    monkeypatch.setenv("MAIL_BIND", "127.0.0.1")
    monkeypatch.setenv("MAIL_PORT_OFFSET", "20000")
    inst = Instance.from_env()
    assert (inst.name, inst.state_dir, inst.bind, inst.host_port(25)) == (
        "envi", Path("/tmp/envstate/envi"), "127.0.0.1", 20025)
    assert Instance.from_env(name="other").name == "other"  # an option wins over the env var


def test_fixed_addresses_are_part_of_the_spec_hash():
    """A daemon's address moving (a new network) must recreate the containers that list it."""
    spec = build_stack(make(), "mail.example.org").container("rspamd")
    first = spec.with_addresses({"redis": "10.89.0.249", "rspamd": "10.89.0.252"})
    same = spec.with_addresses({"rspamd": "10.89.0.252", "redis": "10.89.0.249"})
    moved = spec.with_addresses({"redis": "10.89.1.249", "rspamd": "10.89.1.252"})
    assert first.addresses == (("redis", "10.89.0.249"), ("rspamd", "10.89.0.252"))
    assert first.labels["mail.spec-hash"] == same.labels["mail.spec-hash"] == first.spec_hash()
    assert moved.labels["mail.spec-hash"] != first.labels["mail.spec-hash"]
    assert spec.with_addresses({}).labels["mail.spec-hash"] == spec.labels["mail.spec-hash"]
    assert spec.labels.get("mail.daemon") == first.labels["mail.daemon"] == "rspamd"


def test_every_container_is_restarted_by_the_engine_after_its_daemon_dies():
    """unless-stopped: a crash (kill -9, OOM) brings the container back; an operator's
    stop does not (both engines record it as wanted)."""
    assert {c.restart_policy for c in build_stack(make(), "mail.example.org").containers} == {"unless-stopped"}


class FakeEngine:
    """What check_ports asks an engine: the containers, with their published ports."""

    def __init__(self, containers):
        self.containers = containers

    def list_containers(self, instance=None):
        return [c for c in self.containers if instance in (None, c.labels.get("mail.instance"))]


def test_port_check_follows_the_bind_address(monkeypatch):
    from mailctl import ports
    from mailctl.engines.base import ContainerInfo
    from mailctl.errors import PortConflict

    monkeypatch.setattr(ports, "_port_free", lambda host, port: True)  # only the engine's view
    other = ContainerInfo("o1-postfix", "running", {"mail.instance": "o1"}, [("127.0.0.2", 20025)])
    engine = FakeEngine([other])
    # Another address: both instances can own port 20025 side by side.
    ports.check_ports(build_stack(make(port_offset=20000, bind="127.0.0.1"), "mail.example.org"), engine)
    for bind in ("127.0.0.2", ""):  # the same address, or every address
        with pytest.raises(PortConflict, match="20025 \\(smtp\\).*o1-postfix"):
            ports.check_ports(build_stack(make(port_offset=20000, bind=bind), "mail.example.org"), engine)
