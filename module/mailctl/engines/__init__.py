"""Container engine adapters: one interface, a podman-py and a Docker SDK implementation."""

from __future__ import annotations

from .base import ContainerInfo, Engine, EngineError


def get_engine(name: str) -> Engine:
    """Return the adapter for `name` ("podman" or "docker")."""
    if name == "podman":
        from .podman import PodmanEngine

        return PodmanEngine()
    if name == "docker":
        from .docker import DockerEngine

        return DockerEngine()
    raise EngineError(f"unknown engine {name!r}: use 'podman' or 'docker'")


__all__ = ["ContainerInfo", "Engine", "EngineError", "get_engine"]
