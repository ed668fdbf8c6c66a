"""Instance life cycle: up, down, status, logs."""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from . import crashloop
from .apply import Applier
from .context import render_context
from .engines import Engine, get_engine
from .errors import MailError
from .ports import check_ports
from .probes import probe_port
from .render import ConfigTree
from .secrets import ensure_secrets
from .settings import Instance
from .stack import DAEMONS, LAYOUT, LAYOUT_LABEL, ContainerSpec, Stack, build_stack, network_layout
from .state import Store
from .tls import ensure_self_signed

T = TypeVar("T")


@dataclass
class DaemonStatus:
    name: str
    daemon: str
    state: str
    health: str  # healthy, unhealthy, starting, stopped
    # times the engine restarted the container after its daemon died (restart policy)
    restarts: int = 0
    # state "crash-loop": when `mailctl watch` starts it again (epoch seconds)
    next_start: float | None = None

    def as_dict(self) -> dict:
        out = {"name": self.name, "daemon": self.daemon, "state": self.state, "health": self.health,
               "restarts": self.restarts}
        if self.next_start is not None:
            out["next_start"] = round(self.next_start)
        return out


def prepare(instance: Instance) -> tuple[Store, str, list[str]]:
    """Create the state directory, database, secrets, certificate and rendered config.

    Returns the store, the hostname and the daemons whose rendered files changed
    (after an upgrade of the templates, say), so running containers can reload them.
    """
    instance.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(instance.db_path)
    ensure_secrets(instance)
    context = render_context(store)
    ensure_self_signed(instance.tls_dir, context["hostname"])
    tree = ConfigTree(instance.config_dir)
    staging = tree.stage(context)
    changed = tree.changed_daemons(staging, DAEMONS)
    if changed:
        tree.swap(staging)
    tree.prune()
    return store, context["hostname"], changed


def daemon_health(engine: Engine, stack: Stack, daemon: str, state: str) -> str:
    """healthy when the container runs, its healthcheck passes and its ports greet."""
    if state != "running":
        return "stopped"
    spec = stack.container(daemon)
    code, _ = engine.exec(spec.name, spec.health_command)
    if code != 0:
        return "unhealthy"
    host = stack.instance.probe_address
    for p in spec.ports:
        ok, _ = probe_port(p.name, host, p.host_port, p.tls)
        if not ok:
            return "unhealthy"
    return "healthy"


def status(instance: Instance, engine: Engine | None = None) -> list[DaemonStatus]:
    """Each daemon's container: state (running, exited, absent, dead, crash-loop...), health, restarts."""
    engine = engine or get_engine(instance.engine)
    stack = build_stack(instance, "status.invalid")
    present = {c.daemon: c for c in engine.list_containers(instance.name)}
    held = crashloop.read_held(instance.state_dir)
    result = []
    for daemon in DAEMONS:
        info = present.get(daemon)
        if info is not None and info.lost:
            result.append(DaemonStatus(info.name, daemon, "dead", "stopped", info.restarts))
            continue
        if info is None:
            result.append(DaemonStatus(instance.container_name(daemon), daemon, "absent", "stopped"))
            continue
        if info.state != "running" and info.name in held:  # the watcher holds it stopped for a while
            result.append(DaemonStatus(info.name, daemon, "crash-loop", "stopped", info.restarts,
                                       held[info.name].get("next_start")))
            continue
        result.append(DaemonStatus(info.name, daemon, info.state, "", info.restarts))
    checked = [s for s in result if not s.health]
    for entry, health in zip(checked, _healths(engine, stack, [(s.daemon, s.state) for s in checked]), strict=True):
        entry.health = health
    return result


def _healths(engine: Engine, stack: Stack, daemons: Iterable[tuple[str, str]]) -> list[str]:
    """daemon_health of each (daemon, state), all at once: each check is a round trip into
    a container, and one after the other they took most of the time `up` waited."""
    return _run_all([functools.partial(daemon_health, engine, stack, d, state) for d, state in daemons])


def _run_all(jobs: list[Callable[[], T]]) -> list[T]:
    """Run the engine calls of `jobs` at the same time and return their results in order;
    the first error is raised once all ended."""
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(job) for job in jobs]
    return [future.result() for future in futures]


def up(instance: Instance, progress: Callable[[str], None] = print, timeout: float = 180,
       hold: Collection[str] = ()) -> None:
    """Start every container of the instance and wait until all are healthy.

    The containers are made and started at the same time: each daemon finds the others at
    fixed addresses and retries them until they answer, so none needs another started first.
    `hold`: names of existing containers to leave as they are, neither started nor waited
    for (the ones `mailctl watch` keeps stopped while a crash loop backs off)."""
    engine = get_engine(instance.engine)
    missing = [instance.image(d) for d in DAEMONS if not engine.image_exists(instance.image(d))]
    if missing:
        hint = "./build-images.sh" + (" --docker" if engine.name == "docker" else "")
        raise MailError(f"missing image(s) {', '.join(missing)}: run {hint}")
    check_ports(build_stack(instance, "ports.invalid"), engine)
    store, hostname, changed = prepare(instance)
    store.close()
    stack = build_stack(instance, hostname)

    _replace_old_networks(engine, stack, progress)
    for network in stack.networks:
        engine.ensure_network(network.name, stack.network_labels, internal=network.internal)
    for volume in stack.volumes:
        engine.ensure_volume(volume, stack.labels)
    addresses = {}
    for spec in stack.containers:  # each daemon at the top of the network it serves on
        addresses.update(engine.daemon_addresses(spec.home_network, [spec.daemon]))
    existing = {c.name: c for c in engine.list_containers(instance.name)}
    started = time.monotonic()
    held = {name for name in hold if name in existing}
    jobs: list[Callable[[], object]] = []
    for spec in stack.containers:
        if spec.name in held:
            continue
        spec = spec.with_addresses(addresses)
        # A rebuilt image or a changed spec means a new container; otherwise reuse it.
        spec.labels["mail.image-id"] = engine.image_id(spec.image)
        info = existing.get(spec.name)
        if info and info.lost:  # its process is gone and the engine cannot restart it: recreate
            progress(f"replacing {spec.name} (its process is gone)")
            engine.force_remove(spec.name)
            info = None
        if info and all(info.labels.get(k) == spec.labels[k] for k in ("mail.spec-hash", "mail.image-id")):
            if info.state != "running":
                jobs.append(lambda name=spec.name: engine.start(name))
            elif spec.daemon in changed:
                progress(f"applying new configuration to {spec.name}")
                Applier(instance, engine).reload_daemon(spec.daemon)
            continue
        progress(f"starting {spec.name}")
        jobs.append(lambda spec=spec, replace=bool(info): _create(engine, spec, replace))
    _run_all(jobs)
    _wait_healthy(engine, stack, progress, started, timeout, skip=held)


def _create(engine: Engine, spec: ContainerSpec, replace: bool) -> None:
    if replace:  # an older container of the daemon (another image or spec)
        engine.remove_container(spec.name)
    engine.create_and_start(spec)


def _replace_old_networks(engine: Engine, stack: Stack, progress: Callable[[str], None]) -> None:
    """An instance made before per-link networks has one network, named after it, shared by
    every daemon and not isolated: its containers go (`up` makes them again, their specs
    changed anyway) and so does that network, made again isolated as postfix's edge."""
    labels = engine.network_labels(stack.network)
    if labels is None or labels.get(LAYOUT_LABEL) == LAYOUT:
        return
    for daemon in reversed(DAEMONS):
        name = stack.container(daemon).name
        if any(c.name == name for c in engine.list_containers(stack.instance.name)):
            progress(f"removing {name} (moving to per-link networks)")
            engine.remove_container(name)
    engine.remove_network(stack.network)


def _wait_healthy(engine: Engine, stack: Stack, progress, started: float, timeout: float,
                  skip: Collection[str] = ()) -> None:
    pending = [d for d in DAEMONS if stack.container(d).name not in skip]
    while pending:
        states = {c.daemon: c.state for c in engine.list_containers(stack.instance.name)}
        for daemon in pending:
            state = states.get(daemon, "absent")
            if state in ("exited", "stopped", "absent", "dead"):
                raise MailError(_failure(engine, stack, daemon, f"container {state}"))
        healths = _healths(engine, stack, [(d, states[d]) for d in pending])
        for daemon, health in zip(list(pending), healths, strict=True):
            if health == "healthy":
                pending.remove(daemon)
                progress(f"{daemon:<9} healthy ({time.monotonic() - started:.1f}s)")
        if pending and time.monotonic() - started > timeout:
            raise MailError(_failure(engine, stack, pending[0], f"not healthy after {timeout:.0f}s"))
        if pending:
            time.sleep(0.25)


def _failure(engine: Engine, stack: Stack, daemon: str, why: str) -> str:
    logs = engine.logs(stack.container(daemon).name, tail=20).rstrip()
    return f"{daemon} did not come up ({why}). Last log lines:\n{logs}"


def down(instance: Instance, purge: bool = False, progress: Callable[[str], None] = print) -> None:
    """Remove the instance's containers and network; with `purge` its volumes and state too."""
    engine = get_engine(instance.engine)
    present = {c.name for c in engine.list_containers(instance.name)}
    jobs: list[Callable[[], object]] = []
    for daemon in reversed(DAEMONS):
        name = instance.container_name(daemon)
        if name in present:
            progress(f"removing {name}")
            jobs.append(lambda name=name: engine.remove_container(name))
    _run_all(jobs)  # each stop waits for its daemon to end: all at once
    for network in network_layout(instance.name):
        engine.remove_network(network.name)
    if purge:
        for volume in engine.list_volumes(instance.name):
            progress(f"removing volume {volume}")
            engine.remove_volume(volume)
        shutil.rmtree(instance.state_dir, ignore_errors=True)


def logs(instance: Instance, daemon: str, tail: int | None = None) -> str:
    if daemon not in DAEMONS:
        raise MailError(f"unknown daemon {daemon!r}: choose one of {', '.join(DAEMONS)}")
    engine = get_engine(instance.engine)
    return engine.logs(instance.container_name(daemon), tail=tail)
