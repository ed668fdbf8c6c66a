"""What the runtime needs from a container engine."""

from __future__ import annotations

import ipaddress
import os
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MailError
from ..stack import ContainerSpec, Mount


class EngineError(MailError):
    """The engine is unreachable or refused a request."""


@dataclass
class ContainerInfo:
    name: str
    state: str  # running, exited, created, ...
    labels: dict[str, str] = field(default_factory=dict)
    # host ports this container publishes: (host_ip, host_port)
    ports: list[tuple[str, int]] = field(default_factory=list)
    # times the engine restarted it after its daemon died, since it was last started by hand
    restarts: int = 0
    # the host pid of its main process while it runs (0 if unknown)
    pid: int = 0

    @property
    def lost(self) -> bool:
        """Shown running, but its main process is gone: the engine lost track of it (podman,
        once the container's conmon died, neither notices nor restarts it)."""
        return self.state == "running" and self.pid > 0 and not os.path.exists(f"/proc/{self.pid}")

    @property
    def instance(self) -> str | None:
        return self.labels.get("mail.instance")

    @property
    def daemon(self) -> str | None:
        return self.labels.get("mail.daemon")


def top_addresses(subnets: Sequence[str], daemons: Sequence[str]) -> dict[str, str]:
    """The last addresses of the first IPv4 subnet with room, one a daemon, in `daemons`
    order ({} if none): far from the addresses engines hand out from the bottom."""
    for subnet in subnets:
        net = ipaddress.ip_network(subnet)
        if net.version == 4 and net.num_addresses >= 64:
            last = int(net.broadcast_address) - 1
            top = [str(ipaddress.ip_address(last - i)) for i in range(len(daemons))][::-1]
            return dict(zip(daemons, top, strict=True))
    return {}


def published_ports(port_map: dict | None) -> list[tuple[str, int]]:
    """(host ip, host port) pairs from an engine's {"25/tcp": [{"HostIp", "HostPort"}]} map."""
    return [(b.get("HostIp") or "", int(b["HostPort"]))
            for bindings in (port_map or {}).values() for b in bindings or []]


class Engine(ABC):
    """Adapter interface. Every method is idempotent where that makes sense."""

    name: str

    @abstractmethod
    def image_exists(self, ref: str) -> bool: ...

    @abstractmethod
    def image_id(self, ref: str) -> str: ...

    @abstractmethod
    def ensure_network(self, name: str, labels: dict[str, str], internal: bool = False) -> None:
        """Make the bridge network `name` unless it exists. Every network made here is isolated
        from the engine's other isolated networks; an `internal` one also has no way out."""

    @abstractmethod
    def network_labels(self, name: str) -> dict[str, str] | None:
        """The labels of network `name`, None if there is no such network."""

    @abstractmethod
    def remove_network(self, name: str) -> None: ...

    @abstractmethod
    def network_exists(self, name: str) -> bool: ...

    @abstractmethod
    def ensure_volume(self, name: str, labels: dict[str, str]) -> None: ...

    @abstractmethod
    def remove_volume(self, name: str) -> None: ...

    @abstractmethod
    def list_volumes(self, instance: str) -> list[str]: ...

    @abstractmethod
    def list_containers(self, instance: str | None = None) -> list[ContainerInfo]:
        """Containers of `instance`, or of every mail instance when None."""

    @abstractmethod
    def create_and_start(self, spec: ContainerSpec) -> None: ...

    @abstractmethod
    def start(self, name: str) -> None: ...

    def restart(self, name: str, timeout: int = 10) -> None:
        """Restart a container (podman-py and the Docker SDK share this call)."""
        try:
            self.client.containers.get(name).restart(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - both SDKs raise their own APIError
            raise EngineError(f"{self.name} could not restart {name}: {exc}") from exc

    def stop(self, name: str, timeout: int = 10) -> None:
        """Stop a container: a wanted stop, which the restart policy leaves alone (both SDKs)."""
        try:
            self.client.containers.get(name).stop(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - both SDKs raise their own APIError
            raise EngineError(f"{self.name} could not stop {name}: {exc}") from exc

    def pause(self, name: str) -> None:
        """Freeze every process of a running container (podman-py and the Docker SDK share this call)."""
        try:
            self.client.containers.get(name).pause()
        except Exception as exc:  # noqa: BLE001 - both SDKs raise their own APIError
            raise EngineError(f"{self.name} could not pause {name}: {exc}") from exc

    def unpause(self, name: str) -> None:
        """Let a paused container run again."""
        try:
            self.client.containers.get(name).unpause()
        except Exception as exc:  # noqa: BLE001 - both SDKs raise their own APIError
            raise EngineError(f"{self.name} could not unpause {name}: {exc}") from exc

    def daemon_addresses(self, network: str, daemons: Sequence[str]) -> dict[str, str]:
        """Fixed addresses of the daemons on `network`, written into every container's
        /etc/hosts; {} leaves the daemons' names to the engine's DNS (Docker's is reliable)."""
        return {}

    def container_ip(self, name: str, network: str) -> str:
        """The container's address on `network` (rootful bridges are reachable from the host)."""
        try:
            attrs = self.client.containers.get(name).attrs
        except Exception as exc:  # noqa: BLE001 - both SDKs raise their own NotFound
            raise EngineError(f"container {name} is not running: start the instance with 'mailctl up'") from exc
        networks = attrs.get("NetworkSettings", {}).get("Networks", {})
        address = (networks.get(network) or {}).get("IPAddress")
        if not address:
            raise EngineError(f"container {name} has no address on network {network}")
        return address

    @abstractmethod
    def remove_container(self, name: str, timeout: int = 10) -> None: ...

    def force_remove(self, name: str) -> None:
        """Remove a container without stopping it first (one whose process is gone)."""
        try:
            self.client.containers.get(name).remove(force=True)
        except Exception as exc:  # noqa: BLE001 - both SDKs raise their own APIError/NotFound
            raise EngineError(f"{self.name} could not remove {name}: {exc}") from exc

    @abstractmethod
    def exec(self, name: str, command: list[str] | tuple[str, ...],
             env: dict[str, str] | None = None) -> tuple[int, str]:
        """Run a command in a running container; return (exit code, combined output).

        `env` is added to the command's environment: the way to hand it a secret, which a
        command line would show to every process of the container (`ps`)."""

    def exec_with_input(self, name: str, command: list[str], stdin: Path) -> tuple[int, str]:
        """Run a command in a running container with the file `stdin` as its standard input;
        return (exit code, combined output). Both engines' CLIs take `exec -i` (and read
        the same DOCKER_HOST / podman socket as their SDK)."""
        with stdin.open("rb") as source:
            proc = subprocess.run([self.name, "exec", "-i", name, *command], stdin=source,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return proc.returncode, proc.stdout.decode(errors="replace")

    @abstractmethod
    def run_once(self, image: str, command: list[str], mounts: tuple[Mount, ...]) -> tuple[int, str]:
        """Run a throw-away container to completion; return (exit code, output)."""

    def export_volume(self, name: str, dest: Path, helper_image: str) -> None:
        """Write the content of volume `name` to the tar file `dest`, owners and modes kept.

        This default runs `tar` in a throw-away container of `helper_image` (any image
        with GNU tar) that mounts the volume and dest's directory; an engine with a
        native volume export overrides it.
        """
        code, out = self.run_once(helper_image, [
            "tar", "--numeric-owner", "-C", "/volume", "-cf", f"/backup/{dest.name}", ".",
        ], (Mount(name, "/volume", kind="volume", read_only=True), Mount(str(dest.parent), "/backup")))
        if code != 0:
            raise EngineError(f"{self.name} could not export volume {name}: {out.strip()[-300:]}")

    def import_volume(self, name: str, source: Path, labels: dict[str, str], helper_image: str) -> None:
        """Replace the content of volume `name` by the tar file `source` (the volume is
        created again with `labels`: no container may use it). Default: `tar` in a
        throw-away container, as in export_volume."""
        self.remove_volume(name)
        self.ensure_volume(name, labels)
        code, out = self.run_once(helper_image, [
            "tar", "--numeric-owner", "-C", "/volume", "-xpf", f"/backup/{source.name}",
        ], (Mount(name, "/volume", kind="volume"), Mount(str(source.parent), "/backup", read_only=True)))
        if code != 0:
            raise EngineError(f"{self.name} could not import volume {name}: {out.strip()[-300:]}")

    @abstractmethod
    def logs(self, name: str, tail: int | None = None, timestamps: bool = False) -> str:
        """A container's stdout+stderr; `timestamps` prefixes each line with the engine's RFC 3339 time."""

    @abstractmethod
    def stats(self, name: str) -> int:
        """Memory in use by a running container, in bytes."""
