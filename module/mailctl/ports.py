"""Port ownership: one instance owns the public ports of a host.

Before anything starts, every port the instance would publish is tried; a port
held by another mail instance or by any other process is reported by name.
"""

from __future__ import annotations

import errno
import socket
import subprocess

from .engines import Engine
from .errors import PortConflict
from .stack import Stack


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _process_owner(port: int) -> str:
    """Best effort: the process listening on `port`, from `ss`."""
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return "another process"
    if 'users:(("' in out:
        return "process " + out.split('users:(("', 1)[1].split('"', 1)[0]
    return "another process"


WILDCARDS = ("", "0.0.0.0", "::")


def overlap(ip_a: str, ip_b: str) -> bool:
    """Whether two bind addresses of one port collide: the same address, or either is
    every address (an instance bound to 127.0.0.2 leaves 127.0.0.1's ports free)."""
    return ip_a in WILDCARDS or ip_b in WILDCARDS or ip_a == ip_b


def check_ports(stack: Stack, engine: Engine) -> None:
    """Raise PortConflict naming every port held by someone other than this instance."""
    mine = engine.list_containers(stack.instance.name)
    running_mine = {c.name for c in mine if c.state == "running"}
    held: dict[int, list[tuple[str, str]]] = {}
    for info in engine.list_containers():
        if info.name in {c.name for c in mine} or info.state != "running":
            continue
        for host_ip, host_port in info.ports:
            held.setdefault(host_port, []).append(
                (host_ip, f"mail instance '{info.instance}' (container {info.name})"))
    conflicts: list[tuple[str, str]] = []
    for spec in stack.containers:
        if spec.name in running_mine:
            continue  # our own running container already holds its ports
        for p in spec.ports:
            owner = next((who for ip, who in held.get(p.host_port, []) if overlap(ip, p.host_ip)), None)
            if owner is None and not _port_free(p.host_ip, p.host_port):
                owner = _process_owner(p.host_port)
            if owner:
                conflicts.append((f"{p.host_ip or '*'}:{p.host_port} ({p.name})", owner))
    if conflicts:
        owners = sorted({owner for _, owner in conflicts})
        ports = ", ".join(where for where, _ in conflicts)
        raise PortConflict(
            f"TCP port{'s' if len(conflicts) > 1 else ''} {ports} already in use by {'; '.join(owners)}. "
            "Only one mail instance can own these ports: stop it (mailctl down), "
            "or start this one with another --bind or --port-offset."
        )
