"""Docker adapter, through the Docker SDK (docker-py) and the engine's socket."""

from __future__ import annotations

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import Mount as DockerMount
from docker.types import Ulimit
from docker.utils import version_gte

from ..hostcheck import container_ulimits
from ..stack import ContainerSpec, Mount
from .base import ContainerInfo, Engine, EngineError, published_ports


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

    def ensure_network(self, name: str, labels: dict[str, str]) -> None:
        if not self.network_exists(name):
            self.client.networks.create(name, labels=labels, driver="bridge")

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
        endpoint = self.client.api.create_endpoint_config(aliases=list(spec.aliases))
        try:
            container = self.client.containers.create(
                spec.image,
                name=spec.name,
                hostname=spec.hostname,
                labels=spec.labels,
                environment=spec.env,
                mounts=mounts,
                ports=ports,
                network=spec.network,
                networking_config={spec.network: endpoint},
                ulimits=[Ulimit(name=n, soft=s, hard=h) for n, s, h in spec.ulimits],
                restart_policy={"Name": spec.restart_policy},
            )
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

    def exec(self, name: str, command) -> tuple[int, str]:
        try:
            code, output = self.client.containers.get(name).exec_run(list(command))
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
