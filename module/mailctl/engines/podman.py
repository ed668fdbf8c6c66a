"""Podman adapter, through podman-py and the podman API socket.

If no API service answers, one is started in the background (`podman system
service`), so a fresh host needs no systemd unit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from podman import PodmanClient
from podman.errors import APIError, NotFound

from ..stack import ContainerSpec, Mount
from .base import ContainerInfo, Engine, EngineError, published_ports, top_addresses


def _socket_path() -> Path:
    if os.geteuid() == 0:
        return Path("/run/podman/podman.sock")
    return Path(os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")) / "podman/podman.sock"


def _answers(url: str) -> bool:
    """Whether a podman API service answers on `url`.

    /_ping, not /version: a busy service takes seconds to gather its version (host
    information), and every action asks this once or twice."""
    try:
        with PodmanClient(base_url=url) as client:
            return bool(client.ping())
    except Exception:  # noqa: BLE001 - any failure means: no live service
        return False


def _ensure_service(sock: Path) -> None:
    """Start `podman system service` on `sock` unless something already answers there."""
    url = f"unix://{sock}"
    if _answers(url):
        return
    if not shutil.which("podman"):
        raise EngineError("podman is not installed: run ./install.sh")
    sock.parent.mkdir(parents=True, exist_ok=True)
    # cwd "/": the service outlives this process, and in a working directory that is later
    # removed (a checkout, a temporary dir) podman can no longer start any container.
    subprocess.Popen(
        ["podman", "system", "service", "--time=0", url],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, cwd="/",
    )
    for _ in range(100):
        if sock.exists() and _answers(url):
            return
        time.sleep(0.1)
    raise EngineError(f"podman API service did not start on {sock}")


def _ports_of(attrs: dict) -> list[tuple[str, int]]:
    return published_ports(attrs.get("NetworkSettings", {}).get("Ports"))


class PodmanEngine(Engine):
    name = "podman"

    def __init__(self) -> None:
        sock = _socket_path()
        _ensure_service(sock)
        self.client = PodmanClient(base_url=f"unix://{sock}", timeout=120)

    def image_exists(self, ref: str) -> bool:
        return self.client.images.exists(ref)

    def image_id(self, ref: str) -> str:
        return self.client.images.get(ref).id

    def network_exists(self, name: str) -> bool:
        return self.client.networks.exists(name)

    def ensure_network(self, name: str, labels: dict[str, str], internal: bool = False) -> None:
        """isolate: netavark drops what is forwarded between two isolated networks. internal:
        the host forwards nothing that comes from it (its bridge's forwarding is off), so its
        containers answer no one outside it, and podman publishes no port on it."""
        if not self.network_exists(name):
            self.client.networks.create(name, labels=labels, dns_enabled=True, internal=internal,
                                        options={"isolate": "true"})

    def network_labels(self, name: str) -> dict[str, str] | None:
        if not self.network_exists(name):
            return None
        return dict(self.client.networks.get(name).attrs.get("labels") or {})

    def remove_network(self, name: str) -> None:
        if self.network_exists(name):
            self.client.networks.get(name).remove(force=True)

    def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        if not self.client.volumes.exists(name):
            self.client.volumes.create(name, labels=labels)

    def remove_volume(self, name: str) -> None:
        if self.client.volumes.exists(name):
            self.client.volumes.get(name).remove(force=True)

    def list_volumes(self, instance: str) -> list[str]:
        return [v.name for v in self.client.volumes.list(filters={"label": f"mail.instance={instance}"})]

    def list_containers(self, instance: str | None = None) -> list[ContainerInfo]:
        label = f"mail.instance={instance}" if instance else "mail.instance"
        result = []
        for c in self.client.containers.list(all=True, filters={"label": label}):
            try:
                c.reload()
            except NotFound:
                continue  # removed (by another instance's down) since the listing
            result.append(ContainerInfo(c.name, c.status, dict(c.labels or {}), _ports_of(c.attrs),
                                        restarts=int(c.attrs.get("RestartCount") or 0),
                                        pid=int((c.attrs.get("State") or {}).get("Pid") or 0)))
        return result

    def create_and_start(self, spec: ContainerSpec) -> None:
        mounts = [
            {"type": "bind", "source": m.source, "target": m.target, "read_only": m.read_only}
            for m in spec.mounts if m.kind == "bind"
        ]
        volumes = {m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
                   for m in spec.mounts if m.kind == "volume"}
        # No address means all addresses: give podman the bare port. An explicit 0.0.0.0 makes
        # netavark 1.4 write DNAT rules for destination 0.0.0.0/32 only, which nothing reaches.
        ports = {f"{p.container_port}/tcp": (p.host_ip, p.host_port) if p.host_ip else p.host_port
                 for p in spec.ports}
        networks: dict[str, dict] = {name: {} for name in spec.networks}
        home: dict = networks[spec.home_network]
        home["aliases"] = list(spec.aliases)
        own_address = dict(spec.addresses).get(spec.daemon)
        if own_address:
            home["static_ips"] = [own_address]
            home["static_mac"] = mac_for(own_address)
        gateway = self._gateway(spec.networks[0])  # of the primary network
        try:
            container = self.client.containers.create(
                spec.image,
                name=spec.name,
                hostname=spec.hostname,
                labels=spec.labels,
                environment=spec.env,
                mounts=mounts,
                volumes=volumes,
                ports=ports,
                networks=networks,
                extra_hosts={**_host_entry(gateway), **dict(spec.addresses)},
                ulimits=[{"Name": n, "Soft": s, "Hard": h} for n, s, h in spec.ulimits],
                restart_policy={"Name": spec.restart_policy},
                **_dns_options(gateway),
            )
            container.start()
        except APIError as exc:
            raise EngineError(f"podman could not start {spec.name}: {exc.explanation or exc}") from exc

    def daemon_addresses(self, network: str, daemons: Sequence[str]) -> dict[str, str]:
        """The last addresses of the network's IPv4 subnet, one a daemon, in `daemons` order.

        A podman container gets a new address at each start and aardvark-dns, the network's
        DNS, sometimes answers nothing for tens of seconds after the network is made (seen:
        rspamd waited 40 s for "redis" during `up`). With fixed addresses in /etc/hosts the
        daemons find each other at once, after any restart. The top of the subnet keeps
        clear of the addresses podman hands out from the bottom to other containers.
        """
        return top_addresses([s["subnet"] for s in self._subnets(network)], daemons)

    def _gateway(self, network: str) -> str | None:
        """The network's gateway: the host's address on it, where aardvark-dns answers."""
        return next((s["gateway"] for s in self._subnets(network) if s.get("gateway")), None)

    def _subnets(self, network: str) -> list[dict[str, str]]:
        return self.client.networks.get(network).attrs.get("subnets") or []

    def start(self, name: str) -> None:
        self.client.containers.get(name).start()

    def remove_container(self, name: str, timeout: int = 10) -> None:
        try:
            container = self.client.containers.get(name)
        except NotFound:
            return
        if container.status == "running":
            container.stop(timeout=timeout)
        container.remove(force=True)

    def exec(self, name: str, command, env: dict[str, str] | None = None) -> tuple[int, str]:
        try:
            container = self.client.containers.get(name)
            code, output = container.exec_run(list(command), demux=False, environment=env)
        except (APIError, NotFound) as exc:
            return 125, str(exc)
        if isinstance(output, bytes):
            output = _unframe(output).decode(errors="replace")
        return code if code is not None else 0, output or ""

    def run_once(self, image: str, command: list[str], mounts: tuple[Mount, ...]) -> tuple[int, str]:
        from ..hostcheck import container_ulimits

        args = ["podman", "run", "--rm", "--network=none"]
        for name, soft, hard in container_ulimits():
            args += ["--ulimit", f"{name}={soft}:{hard}"]
        for m in mounts:
            args += ["-v", f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}"]
        proc = subprocess.run(args + [image, *command], capture_output=True, text=True)
        return proc.returncode, proc.stdout + proc.stderr

    def export_volume(self, name: str, dest: Path, helper_image: str) -> None:
        """Native `podman volume export` (no helper container needed)."""
        proc = subprocess.run(["podman", "volume", "export", "--output", str(dest), name],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise EngineError(f"podman could not export volume {name}: {proc.stderr.strip()[-300:]}")

    def import_volume(self, name: str, source: Path, labels: dict[str, str], helper_image: str) -> None:
        """The volume is made again (so nothing of its old content stays), then `podman volume import`."""
        self.remove_volume(name)
        self.ensure_volume(name, labels)
        proc = subprocess.run(["podman", "volume", "import", name, str(source)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise EngineError(f"podman could not import volume {name}: {proc.stderr.strip()[-300:]}")

    def logs(self, name: str, tail: int | None = None, timestamps: bool = False) -> str:
        # The CLI gives complete, ordered stdout+stderr; the API stream mixes framing.
        args = ["podman", "logs", *(["--tail", str(tail)] if tail else []), *(["--timestamps"] if timestamps else []),
                name]
        proc = subprocess.run(args, capture_output=True, text=True)
        return proc.stdout + proc.stderr

    def stats(self, name: str) -> int:
        """Usage minus inactive page cache, as the Docker adapter and `docker stats` count it.

        `podman stats` reports the cgroup's whole usage, page cache the kernel can
        reclaim at will included, so the cgroup is read directly when it is local.
        """
        try:
            cgroup = self.client.containers.get(name).attrs.get("State", {}).get("CgroupPath")
        except (APIError, NotFound):
            cgroup = None
        if cgroup:
            usage = _cgroup_memory(cgroup)
            if usage is not None:
                return usage
        proc = subprocess.run(
            ["podman", "stats", "--no-stream", "--format", "{{.MemUsageBytes}}", name],
            capture_output=True, text=True,
        )
        return _parse_size(proc.stdout.split("/")[0].strip()) if proc.returncode == 0 else 0


def mac_for(address: str) -> str:
    """A fixed, locally administered MAC address made of the container's fixed IPv4 address.

    Podman gives a container a random MAC at each start. After a restart the other
    containers' ARP caches still hold the old one for up to a minute, and every packet to
    the restarted daemon (LMTP, milter, LDAP) is lost meanwhile; with the same MAC as
    before, they reach it at once.
    """
    return "02:6d:" + ":".join(f"{int(octet):02x}" for octet in address.split("."))


def _cgroup_memory(cgroup: str) -> int | None:
    """Memory usage minus inactive file cache of `cgroup` (v1 or v2); None if unreadable."""
    root = Path("/sys/fs/cgroup")
    for base, usage_file, inactive_key in (
        (root / "memory", "memory.usage_in_bytes", "total_inactive_file"),  # v1, hybrid hosts
        (root, "memory.current", "inactive_file"),  # v2
    ):
        directory = base / cgroup.lstrip("/")
        try:
            usage = int((directory / usage_file).read_text())
            stat = dict(line.split() for line in (directory / "memory.stat").read_text().splitlines())
        except (OSError, ValueError):
            continue
        return max(0, usage - int(stat.get(inactive_key, 0)))
    return None


def _unframe(raw: bytes) -> bytes:
    """The payload of an exec output multiplexed in frames (8-byte header: stream, 0, 0, 0,
    big-endian length), stdout and stderr in their order; other data is returned as is."""
    out, pos = bytearray(), 0
    while pos + 8 <= len(raw) and raw[pos] in (0, 1, 2) and raw[pos + 1:pos + 4] == b"\0\0\0":
        size = int.from_bytes(raw[pos + 4:pos + 8], "big")
        out += raw[pos + 8:pos + 8 + size]
        pos += 8 + size
    return bytes(out) if pos == len(raw) else raw


def _parse_size(text: str) -> int:
    units = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
             "kib": 1024, "mib": 1024**2, "gib": 1024**3}
    num = text.rstrip("kKmMgGiIbB")
    unit = text[len(num):].lower() or "b"
    try:
        return int(float(num) * units.get(unit, 1))
    except ValueError:
        return 0


def _dns_options(gateway: str | None) -> dict[str, list[str]]:
    """Only the network's DNS (aardvark-dns, on its gateway), retried after 1 s, for the
    names not in /etc/hosts (an external LDAP server, relay hosts, test containers).

    aardvark-dns drops the queries that arrive while it reloads (each time a container
    joins); glibc would wait 5 s, then ask the host's nameservers, which do not know
    the network's container names. aardvark-dns forwards every other name itself.
    """
    return {"dns": [gateway], "dns_opt": ["timeout:1", "attempts:5"]} if gateway else {}


def _host_entry(gateway: str | None) -> dict[str, str]:
    """host.containers.internal at the gateway of the container's primary network.

    On several networks podman names any one of their gateways so; the host's connections
    to the published ports come from the primary one (the only one with published
    ports), and postfix exempts the host from its rate limits by that name. An entry of
    ours comes first in /etc/hosts, before podman's own."""
    return {"host.containers.internal": gateway} if gateway else {}
