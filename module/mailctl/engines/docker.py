"""Docker adapter, through the Docker SDK (docker-py) and the engine's socket."""

from __future__ import annotations

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import IPAMConfig, IPAMPool, Ulimit
from docker.types import Mount as DockerMount
from docker.utils import version_gte

from ..hostcheck import container_ulimits
from ..stack import ContainerSpec, Mount
from .base import ContainerInfo, Engine, EngineError, published_ports, top_addresses

# Label of the networks made with an explicit subnet (fixed addresses possible).
FIXED_SUBNET = "mail.fixed-subnet"


def _ports_of(attrs: dict) -> list[tuple[str, int]]:
    return published_ports(attrs.get("HostConfig", {}).get("PortBindings"))


class DockerEngine(Engine):
    name = "docker"

    def __init__(self) -> None:
        try:
            self.client = docker.from_env(timeout=120)
            self.client.ping()
        except DockerException as exc:
            raise EngineError(f"the Docker engine does not answer ({exc}): start dockerd") from exc

    def image_exists(self, ref: str) -> bool:
        try:
            self.client.images.get(ref)
            return True
        except ImageNotFound:
            return False

    def image_id(self, ref: str) -> str:
        return self.client.images.get(ref).id

    def network_exists(self, name: str) -> bool:
        # The engine's `name` filter matches substrings: "dk1" would find "dk10".
        return any(net.name == name for net in self.client.networks.list(names=[name]))

    def ensure_network(self, name: str, labels: dict[str, str], internal: bool = False) -> None:
        """A bridge network whose subnet is fixed, so the daemons can have fixed addresses.

        Docker gives a container a chosen address only on a network made with an explicit
        subnet: a first network lets Docker pick a free subnet, the real one is made with it.
        Docker isolates user bridge networks from each other by itself; an `internal` one
        also drops whatever leaves or enters it from another network.
        """
        if self.network_exists(name):
            return
        probe = self.client.networks.create(name, labels=labels, driver="bridge", internal=internal)
        try:
            probe.reload()
            subnets = [c for c in (probe.attrs.get("IPAM") or {}).get("Config") or [] if ":" not in c["Subnet"]]
        finally:
            probe.remove()
        pools = [IPAMPool(subnet=c["Subnet"], gateway=c.get("Gateway")) for c in subnets]
        self.client.networks.create(name, labels={**labels, FIXED_SUBNET: "1"}, driver="bridge",
                                    internal=internal, ipam=IPAMConfig(pool_configs=pools) if pools else None)

    def network_labels(self, name: str) -> dict[str, str] | None:
        for net in self.client.networks.list(names=[name]):
            if net.name == name:
                return dict(net.attrs.get("Labels") or {})
        return None

    def daemon_addresses(self, network: str, daemons) -> dict[str, str]:
        """Fixed addresses at the top of the subnet, as with podman: Docker's DNS forgets a
        stopped container's name, and postfix would bounce mail for "host not found" instead of
        keeping it queued. {} for a network made before (the names then go through DNS)."""
        net = self.client.networks.get(network)
        if (net.attrs.get("Labels") or {}).get(FIXED_SUBNET) != "1":
            return {}
        return top_addresses([c["Subnet"] for c in (net.attrs.get("IPAM") or {}).get("Config") or []], daemons)

    def remove_network(self, name: str) -> None:
        for net in self.client.networks.list(names=[name]):
            if net.name == name:
                net.remove()

    def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        try:
            self.client.volumes.get(name)
        except NotFound:
            self.client.volumes.create(name, labels=labels)

    def remove_volume(self, name: str) -> None:
        try:
            self.client.volumes.get(name).remove(force=True)
        except NotFound:
            pass

    def list_volumes(self, instance: str) -> list[str]:
        return [v.name for v in self.client.volumes.list(filters={"label": f"mail.instance={instance}"})]

    def list_containers(self, instance: str | None = None) -> list[ContainerInfo]:
        label = f"mail.instance={instance}" if instance else "mail.instance"
        return [
            ContainerInfo(c.name, c.status, dict(c.labels or {}), _ports_of(c.attrs),
                          restarts=int(c.attrs.get("RestartCount") or 0),
                          pid=int((c.attrs.get("State") or {}).get("Pid") or 0))
            # A container removed between the listing and its inspection is skipped.
            for c in self.client.containers.list(all=True, filters={"label": label}, ignore_removed=True)
        ]

    def create_and_start(self, spec: ContainerSpec) -> None:
        mounts = [
            DockerMount(m.target, m.source, type=m.kind, read_only=m.read_only) for m in spec.mounts
        ]
        ports = {f"{p.container_port}/tcp": (p.host_ip or "0.0.0.0", p.host_port) for p in spec.ports}
        # A fixed address keeps its MAC too (Docker derives the MAC from the address).
        own_address = dict(spec.addresses).get(spec.daemon)
        endpoint = self.client.api.create_endpoint_config(aliases=list(spec.aliases), ipv4_address=own_address)
        primary = spec.networks[0]
        home = {"aliases": list(spec.aliases), "ipv4_address": own_address}
        try:
            container = self.client.containers.create(
                spec.image,
                name=spec.name,
                hostname=spec.hostname,
                labels=spec.labels,
                environment=spec.env,
                mounts=mounts,
                ports=ports,
                network=primary,
                networking_config={primary: endpoint if primary == spec.home_network
                                   else self.client.api.create_endpoint_config()},
                extra_hosts=dict(spec.addresses) or None,
                ulimits=[Ulimit(name=n, soft=s, hard=h) for n, s, h in spec.ulimits],
                restart_policy={"Name": spec.restart_policy},
            )
            # The API of Docker 20.10 takes one network at create time: the others are joined
            # before the start (ports are published on the one with the default route).
            for network in spec.networks[1:]:
                self.client.networks.get(network).connect(
                    container, **(home if network == spec.home_network else {}))
            container.start()
        except APIError as exc:
            raise EngineError(f"docker could not start {spec.name}: {exc.explanation or exc}") from exc

    def start(self, name: str) -> None:
        try:
            self.client.containers.get(name).start()
        except (APIError, NotFound) as exc:
            raise EngineError(f"docker could not start {name}: {getattr(exc, 'explanation', None) or exc}") from exc

    def remove_container(self, name: str, timeout: int = 10) -> None:
        try:
            container = self.client.containers.get(name)
        except NotFound:
            return
        if container.status == "running":
            container.stop(timeout=timeout)
        # v=True: also the anonymous volumes of the image's VOLUME lines (named ones stay).
        container.remove(force=True, v=True)

    def exec(self, name: str, command, env: dict[str, str] | None = None) -> tuple[int, str]:
        try:
            code, output = self.client.containers.get(name).exec_run(list(command), environment=env)
        except (APIError, NotFound) as exc:
            return 125, str(exc)
        return code, output.decode(errors="replace")

    def run_once(self, image: str, command: list[str], mounts: tuple[Mount, ...]) -> tuple[int, str]:
        container = self.client.containers.run(
            image, command, detach=True, network_mode="none",
            mounts=[DockerMount(m.target, m.source, type=m.kind, read_only=m.read_only) for m in mounts],
            ulimits=[Ulimit(name=n, soft=s, hard=h) for n, s, h in container_ulimits()],
        )
        try:
            code = container.wait()["StatusCode"]
            return code, container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)

    def logs(self, name: str, tail: int | None = None, timestamps: bool = False) -> str:
        logs = self.client.containers.get(name).logs(tail=tail or "all", timestamps=timestamps)
        return logs.decode(errors="replace")

    def stats(self, name: str) -> int:
        # one_shot: one sample, instead of waiting ~2 s for a second CPU sample.
        one_shot = True if version_gte(self.client.api.api_version, "1.41") else None
        data = self.client.containers.get(name).stats(stream=False, one_shot=one_shot)
        mem = data.get("memory_stats") or {}
        # As `docker stats` does: usage minus the inactive page cache, which the kernel
        # reclaims at will. cgroups v1 names it total_inactive_file, v2 inactive_file.
        detail = mem.get("stats") or {}
        cache = detail.get("total_inactive_file", detail.get("inactive_file", 0))
        return max(0, mem.get("usage", 0) - cache)
