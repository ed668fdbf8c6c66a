"""Kubernetes manifests for an instance, from the stack definition `mailctl up` uses.

`mailctl kube > mail.yaml` prepares the instance exactly as `up` does (state, secrets,
certificate, rendered configuration) and translates its `Stack` into objects:

- a Deployment per daemon, with the image's health check as liveness/readiness probe;
- Services: a ClusterIP one per daemon named after it (the names the rendered
  configuration uses: `dovecot`, `rspamd`...), so one instance lives in one namespace,
  and a LoadBalancer (or NodePort) one each for the SMTP and the IMAP/POP3/Sieve ports;
- PersistentVolumeClaims for mail, queue, Redis and LDAP data, named like `up`'s
  volumes; the other volumes hold caches (emptyDir), so clamav and rspamd can scale;
- Secrets for the secrets files, the DKIM keys and the TLS key;
- a ConfigMap per daemon with its rendered configuration, and one with a copy of the
  state database that postfix and dovecot read their lookups from;
- a NetworkPolicy per daemon with the links `up` makes networks of (stack.LINKS): a pod
  takes connections only from the pods of its clients, on their ports, plus the public
  ports from anywhere; redis and openldap open no connection at all.

Each pod template carries a hash of what it mounts, so re-applying the output after an
action changed the state rolls out only the daemons whose inputs changed.

`podman kube play` ignores Services and has no network policies, so `for_podman` adds what it needs for the same
objects to find each other on one host: each daemon at a fixed address of the instance's
network (`podman kube play --ip`, in Deployment order) in every pod's /etc/hosts, and
the public ports published on the host with `up`'s bind address and offset.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import stat
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import yaml

from .errors import MailError
from .hostcheck import container_ulimits
from .settings import Instance
from .stack import (
    COMMANDS,
    DAEMONS,
    EDGE,
    INTERNAL_PORTS,
    LINKS,
    PORTS,
    SECRET_DIRS,
    SECRETS,
    VOLUMES,
    ContainerSpec,
    Stack,
    build_stack,
)

# Volumes whose data must survive a pod (PVCs); the others are caches (emptyDir).
PERSISTENT = ("vmail", "queue", "redis", "ldap")
# The public Services: name suffix -> the daemon serving it.
PUBLIC = {"smtp": "postfix", "imap": "dovecot"}
PROBE = {"periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
STARTUP = {"periodSeconds": 2, "timeoutSeconds": 5, "failureThreshold": 90}
# Podman ignores startupProbe and restarts a container after `failureThreshold` failed
# liveness checks, counted from the start unless in this grace period (its start period).
LIVENESS_GRACE = {"initialDelaySeconds": 60}
# Kubernetes refuses a ConfigMap or Secret over 1 MiB (the state copy is the one that grows:
# about 80 KiB for a small instance).
MAX_OBJECT_BYTES = 1024 * 1024


# Every Secret has this key holding "plain": podman 4.3 (not Kubernetes) writes a
# Secret's values into the files still base64-encoded; the files step then decodes them.
ENCODING_PROBE = "encoding-probe"
# Run before the image's command ($2...): $1 holds "name:target:mode" words; each key
# of /kube/<name> ("a__b.conf") becomes the file <target>/a/b.conf with that mode
# (directories 0700 for mode 600). An init container would be the usual place, but
# podman 4.3's kube play does not finish pods with one (it waits, then fails).
FILES_STEP = r"""set -eu
for copy in $1; do
    name=${copy%%:*}; rest=${copy#*:}; target=${rest%:*}; mode=${rest##*:}
    decode=cat
    probe=/kube/$name/encoding-probe
    if [ -f "$probe" ] && [ "$(cat "$probe")" != plain ]; then decode="base64 -d"; fi
    for src in /kube/$name/*; do
        [ -f "$src" ] && [ "$src" != "$probe" ] || continue
        rel=$(basename "$src" | sed 's|__|/|g')
        dir=$(dirname "$target/$rel")
        mkdir -p "$dir"
        if [ "$mode" = 600 ]; then chmod 700 "$dir"; fi
        $decode <"$src" >"$target/$rel"
        chmod "$mode" "$target/$rel"
    done
    if [ -f "$target/key.pem" ]; then chmod 600 "$target/key.pem"; fi
done
shift
exec "$@"
"""


def _meta(stack: Stack, name: str, daemon: str | None = None, **extra: Any) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "mail", "app.kubernetes.io/instance": stack.instance.name}
    if daemon:
        labels["app.kubernetes.io/component"] = daemon
    return {"name": name, "labels": labels, **extra}


def _selector(stack: Stack, daemon: str) -> dict[str, str]:
    return {"app.kubernetes.io/instance": stack.instance.name, "app.kubernetes.io/component": daemon}


def _key(relative: str) -> str:
    """A ConfigMap/Secret key for a file path (keys cannot hold '/')."""
    return relative.replace("/", "__")


def _files(root: Path) -> dict[str, Path]:
    """Relative path -> file, for every file under `root` (sorted, hidden temp files skipped)."""
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def _data(files: dict[str, Path]) -> tuple[dict[str, str], dict[str, str]]:
    """(data, binaryData) of a ConfigMap or Secret holding `files`."""
    text, binary = {}, {}
    for relative, path in files.items():
        raw = path.read_bytes()
        try:
            text[_key(relative)] = raw.decode()
        except UnicodeDecodeError:
            binary[_key(relative)] = base64.b64encode(raw).decode()
    return text, binary


def _secret(stack: Stack, name: str, daemon: str | None, files: dict[str, Path]) -> dict[str, Any]:
    """A Secret of `files`, with the ENCODING_PROBE key (see FILES_STEP)."""
    data = {_key(rel): base64.b64encode(path.read_bytes()).decode() for rel, path in files.items()}
    data[ENCODING_PROBE] = base64.b64encode(b"plain").decode()
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(stack, name, daemon), "type": "Opaque",
            "data": data}


def _state_copy(db: Path, dest: Path) -> Path:
    """A consistent copy of the state database (SQLite online backup)."""
    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    target = sqlite3.connect(dest)
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        source.close()
        target.close()
    return dest


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


class _Builder:
    """Collects the objects of one instance; one method per kind of thing a daemon mounts."""

    def __init__(self, stack: Stack, state_db: Path, service_type: str, storage: str,
                 addresses: dict[str, str] | None, existing_volumes: frozenset[str]):
        self.stack = stack
        self.instance = stack.instance
        self.state_db = state_db
        self.service_type = service_type
        self.storage = storage
        self.addresses = addresses  # for podman kube play: daemon -> fixed address
        self.existing_volumes = existing_volumes  # podman: claims whose volume is there already
        self.configs: list[dict[str, Any]] = []
        self.secrets: list[dict[str, Any]] = []
        self.claims: list[dict[str, Any]] = []
        self.services: list[dict[str, Any]] = []
        self.deployments: list[dict[str, Any]] = []
        self.policies: list[dict[str, Any]] = []
        self._tls: dict[str, Any] | None = None
        self._state: dict[str, Any] | None = None

    def objects(self) -> list[dict[str, Any]]:
        for spec in self.stack.containers:
            self.deployment(spec)
        self.public_services()
        if self.addresses is None:  # podman kube play: one flat network, no policies
            self.policies = [self.network_policy(daemon) for daemon in DAEMONS]
        return self.secrets + self.configs + self.claims + self.services + self.policies + self.deployments

    # -- what a pod mounts -------------------------------------------------------------
    # ConfigMaps and Secrets hold flat keys ("local.d__redis.conf"); a first step in the
    # container (FILES_STEP, before the image's command) writes them back as the files and modes
    # the daemon finds under `up`'s bind mounts, into emptyDir volumes. Volume items with
    # sub-directories would do it without a step, but podman kube play cannot make them.
    def config_source(self, spec: ContainerSpec) -> tuple[str, str]:
        files = _files(self.instance.config_dir / "current" / spec.daemon)
        name = f"{self.instance.name}-{spec.daemon}-config"
        text, binary = _data(files)
        cm: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": _meta(self.stack, name, spec.daemon), "data": text}
        if binary:
            cm["binaryData"] = binary
        self.configs.append(cm)
        return name, _digest(text, binary)

    def tls_source(self) -> tuple[str, str]:
        name = f"{self.instance.name}-tls"
        if self._tls is None:
            self._tls = _secret(self.stack, name, None, _files(self.instance.tls_dir))
            self.secrets.append(self._tls)
        return name, _digest(self._tls)

    def secrets_source(self, spec: ContainerSpec) -> tuple[str, str] | None:
        files = {name: self.instance.secrets_dir / name for name in SECRETS.get(spec.daemon, ())}
        for directory in SECRET_DIRS.get(spec.daemon, ()):
            files.update({f"{directory}/{rel}": path
                          for rel, path in _files(self.instance.secrets_dir / directory).items()})
        if not files:
            return None
        name = f"{self.instance.name}-{spec.daemon}-secrets"
        secret = _secret(self.stack, name, spec.daemon, files)
        self.secrets.append(secret)
        return name, _digest(secret)

    def state_source(self) -> tuple[str, str]:
        name = f"{self.instance.name}-state"
        if self._state is None:
            raw = base64.b64encode(self.state_db.read_bytes()).decode()
            self._state = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(self.stack, name),
                           "binaryData": {"state.sqlite": raw}}
            self.configs.append(self._state)
        return name, _digest(self._state["binaryData"])

    def volume_name(self, spec: ContainerSpec, purpose: str) -> str:
        """A pod volume's name, unique on the host: podman makes a named volume of each emptyDir
        (shared by every pod naming it the same way)."""
        return f"{self.instance.name}-{spec.daemon}-{purpose}"

    def data_volumes(self, spec: ContainerSpec) -> list[tuple[dict, dict]]:
        result = []
        for purpose, target in VOLUMES[spec.daemon].items():
            claim = self.instance.volume_name(purpose)
            if purpose in PERSISTENT and claim in self.existing_volumes:
                source: dict[str, Any] = {"persistentVolumeClaim": {"claimName": claim}}
            elif purpose in PERSISTENT:
                self.claims.append({
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": _meta(self.stack, claim, spec.daemon),
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": self.storage}}},
                })
                source = {"persistentVolumeClaim": {"claimName": claim}}
            else:
                source = {"emptyDir": {}}
            volume = self.volume_name(spec, purpose)
            result.append(({"name": volume, **source}, {"name": volume, "mountPath": target}))
        return result

    # -- the workload ------------------------------------------------------------------
    def deployment(self, spec: ContainerSpec) -> None:
        """The daemon's Deployment and its ClusterIP Service."""
        config, config_hash = self.config_source(spec)
        tls, tls_hash = self.tls_source()
        hashes = [config_hash, tls_hash]
        # name -> (ConfigMap or Secret, the emptyDir the files step fills for the daemon, file mode)
        sources = {
            "config": ({"configMap": {"name": config}}, f"/config/current/{spec.daemon}", "644"),
            "tls": ({"secret": {"secretName": tls, "optional": False}}, "/tls", "644"),
        }
        secrets = self.secrets_source(spec)
        if secrets:
            sources["secrets"] = ({"secret": {"secretName": secrets[0], "optional": False}}, "/run/secrets", "600")
            hashes.append(secrets[1])
        volumes: list[dict[str, Any]] = []
        mounts = []
        for name, (source, target, _) in sources.items():
            src, files = self.volume_name(spec, f"{name}-src"), self.volume_name(spec, f"{name}-files")
            volumes.append({"name": src, **source})
            volumes.append({"name": files, "emptyDir": {"medium": "Memory"} if name != "config" else {}})
            mounts.append({"name": src, "mountPath": f"/kube/{name}", "readOnly": True})
            mounts.append({"name": files, "mountPath": target})
        if spec.daemon in ("postfix", "dovecot"):  # lookups read from the state at query time
            state, state_hash = self.state_source()
            hashes.append(state_hash)
            volume = self.volume_name(spec, "state")
            volumes.append({"name": volume, "configMap": {"name": state}})
            mounts.append({"name": volume, "mountPath": "/state", "readOnly": True})
        for volume, mount in self.data_volumes(spec):
            volumes.append(volume)
            mounts.append(mount)
        copies = " ".join(f"{name}:{target}:{mode}" for name, (_, target, mode) in sources.items())
        ports = []
        for p in spec.ports:
            port: dict[str, Any] = {"name": p.name, "containerPort": p.container_port, "protocol": "TCP"}
            if self.addresses is not None:  # podman: publish like `up`
                port["hostPort"] = p.host_port
                if p.host_ip:
                    port["hostIP"] = p.host_ip
            ports.append(port)
        published = {p.container_port for p in spec.ports}
        if self.addresses is None:  # podman publishes on the host every port listed, even without hostPort
            ports += [{"name": name, "containerPort": number, "protocol": "TCP"}
                      for name, number in INTERNAL_PORTS.get(spec.daemon, {}).items() if number not in published]
        probe = {"exec": {"command": list(spec.health_command)}}
        container = {
            "name": spec.daemon,
            "image": spec.image,
            "imagePullPolicy": "IfNotPresent",
            # The files step, then the image's own command.
            "command": ["/bin/sh", "-c", FILES_STEP],
            "args": ["files", copies, *COMMANDS[spec.daemon]],
            "ports": ports,
            "volumeMounts": mounts,
            "startupProbe": {**probe, **STARTUP},
            "livenessProbe": {**probe, **PROBE, **LIVENESS_GRACE},
            "readinessProbe": {**probe, **PROBE},
        }
        if spec.env:
            container["env"] = [{"name": k, "value": v} for k, v in sorted(spec.env.items())]
        pod: dict[str, Any] = {"containers": [container], "volumes": volumes}
        if self.addresses:
            pod["hostAliases"] = [{"ip": ip, "hostnames": [daemon]} for daemon, ip in self.addresses.items()]
        if spec.daemon == "postfix":
            pod["hostname"] = spec.hostname.split(".", 1)[0]
        selector = _selector(self.stack, spec.daemon)
        self.deployments.append({
            "apiVersion": "apps/v1", "kind": "Deployment",
            # Named like `up`'s containers; podman's pods are host-wide, unlike namespaced Deployments.
            "metadata": _meta(self.stack, spec.name, spec.daemon),
            "spec": {
                "replicas": 1,
                # Volumes are ReadWriteOnce: the old pod goes before the new one mounts them.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": _meta(self.stack, spec.daemon, spec.daemon)["labels"],
                                 "annotations": {"mail/inputs-hash": _digest(hashes)}},
                    "spec": pod,
                },
            },
        })
        internal = {**INTERNAL_PORTS.get(spec.daemon, {})}
        self.services.append({
            "apiVersion": "v1", "kind": "Service", "metadata": _meta(self.stack, spec.daemon, spec.daemon),
            "spec": {"type": "ClusterIP", "selector": selector,
                     "ports": [{"name": n, "port": p, "targetPort": p, "protocol": "TCP"}
                               for n, p in internal.items()]},
        })

    def network_policy(self, daemon: str) -> dict[str, Any]:
        """Who may connect to `daemon`'s pods: its LINKS clients on their ports, anyone on the
        public ports. A daemon without an edge (redis, openldap) may connect nowhere."""
        ingress: list[dict[str, Any]] = []
        public = [port for owner, port, _ in PORTS.values() if owner == daemon and daemon in PUBLIC.values()]
        if public:
            ingress.append({"ports": [{"protocol": "TCP", "port": p} for p in public]})
        for client, names in sorted(LINKS.get(daemon, {}).items()):
            ingress.append({
                "from": [{"podSelector": {"matchLabels": _selector(self.stack, client)}}],
                "ports": [{"protocol": "TCP", "port": INTERNAL_PORTS[daemon][n]} for n in names],
            })
        spec: dict[str, Any] = {"podSelector": {"matchLabels": _selector(self.stack, daemon)},
                                "policyTypes": ["Ingress"], "ingress": ingress}
        if daemon not in EDGE:
            spec["policyTypes"].append("Egress")
            spec["egress"] = []
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": _meta(self.stack, f"{self.instance.name}-{daemon}", daemon), "spec": spec}

    def public_services(self) -> None:
        for suffix, daemon in PUBLIC.items():
            ports = [{"name": name, "port": port, "targetPort": port, "protocol": "TCP"}
                     for name, (owner, port, _) in PORTS.items() if owner == daemon]
            self.services.append({
                "apiVersion": "v1", "kind": "Service",
                "metadata": _meta(self.stack, f"{self.instance.name}-{suffix}", daemon),
                "spec": {"type": self.service_type, "selector": _selector(self.stack, daemon), "ports": ports,
                         # Keep the client's address: postfix's relay and sender checks need it.
                         "externalTrafficPolicy": "Local"},
            })


def manifests(stack: Stack, service_type: str = "LoadBalancer", storage: str = "1Gi",
              addresses: dict[str, str] | None = None,
              existing_volumes: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The Kubernetes objects of a prepared instance (`lifecycle.prepare` has run).

    `addresses` (daemon -> address) and `existing_volumes` are for podman kube play: the
    daemons' fixed addresses, and the volumes left by `up` that the pods take over
    (podman refuses a claim whose volume exists, and uses the volume when no claim names it).
    """
    with tempfile.TemporaryDirectory() as tmp:
        db = _state_copy(stack.instance.db_path, Path(tmp) / "state.sqlite")
        objects = _Builder(stack, db, service_type, storage, addresses, existing_volumes).objects()
    for obj in objects:
        size = len(json.dumps(obj.get("data", {})) + json.dumps(obj.get("binaryData", {})))
        if obj["kind"] in ("ConfigMap", "Secret") and size > MAX_OBJECT_BYTES:
            raise MailError(f"{obj['kind']} {obj['metadata']['name']} would hold {size} bytes, more than "
                            f"Kubernetes stores in one object ({MAX_OBJECT_BYTES})")
    return objects


def generate(instance: Instance, service_type: str = "LoadBalancer", storage: str = "1Gi",
             for_podman: bool = False) -> tuple[str, str]:
    """The instance's manifests as YAML, prepared as `up` prepares it; and, for podman, how to play them."""
    from .engines import get_engine
    from .lifecycle import prepare

    store, hostname, _ = prepare(instance)
    store.close()
    stack = build_stack(instance, hostname)
    if not for_podman:
        return to_yaml(manifests(stack, service_type, storage)), ""
    if instance.engine != "podman":
        raise MailError("--podman: the instance's engine is docker; podman kube play needs podman")
    engine = get_engine(instance.engine)
    running = [c.name for c in engine.list_containers(instance.name) if c.state == "running"]
    if running:  # the pods would take over its volumes and ports
        raise MailError(f"instance {instance.name} runs under 'mailctl up' ({', '.join(running)}): "
                        f"'mailctl down' first (volumes are kept)")
    engine.ensure_network(stack.network, stack.network_labels)
    addresses = engine.daemon_addresses(stack.network, DAEMONS)
    if not addresses:
        raise MailError(f"network {stack.network} has no IPv4 subnet for the daemons' fixed addresses")
    conf = podman_containers_conf(instance.state_dir / "kube" / "containers.conf", container_ulimits())
    ips = " ".join(f"--ip {addresses[d]}" for d in DAEMONS)
    objects = manifests(stack, service_type, storage, addresses, frozenset(engine.list_volumes(instance.name)))
    volumes, secrets = podman_leftovers(objects)
    hint = (f"play with:  CONTAINERS_CONF={conf} podman kube play --network {stack.network} {ips} FILE\n"
            f"stop with:  podman kube down FILE && podman volume rm {' '.join(volumes)}"
            f" && podman secret rm {' '.join(secrets)}")
    return to_yaml(objects), hint


def podman_leftovers(objects: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(volumes, secrets) that podman 4.3 makes for the ConfigMaps and Secrets of `objects`
    and that `podman kube down` leaves behind (the data volumes are kept on purpose)."""
    volumes = [o["metadata"]["name"] for o in objects if o["kind"] in ("ConfigMap", "Secret")]
    secrets = [o["metadata"]["name"] for o in objects if o["kind"] == "Secret"]
    return volumes, secrets


def make_private(fd: int) -> bool:
    """If `fd` is a regular file others may read (`mailctl kube > mail.yaml`), make it 0600.

    The manifests carry the instance's secrets (passwords, TLS and DKIM keys).
    """
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077:
        os.fchmod(fd, stat.S_IMODE(info.st_mode) & 0o600)
        return True
    return False


def to_yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False)


def podman_containers_conf(dest: Path, ulimits: tuple[tuple[str, int, int], ...]) -> Path:
    """A containers.conf for `podman kube play`: the host's, plus the containers' ulimits.

    Kubernetes objects cannot carry ulimits and podman's defaults exceed this host's hard
    limits (runc then refuses every container), so `up` passes them per container and
    kube play gets them as defaults through CONTAINERS_CONF.
    """
    system = Path("/etc/containers/containers.conf")
    conf: dict[str, dict[str, Any]] = tomllib.loads(system.read_text()) if system.exists() else {}
    conf.setdefault("containers", {})["default_ulimits"] = [f"{n}={s}:{h}" for n, s, h in ulimits]
    lines: list[str] = []

    def table(name: str, values: dict[str, Any]) -> None:
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in values.items() if not isinstance(v, dict))
        for k, v in values.items():
            if isinstance(v, dict):
                table(f"{name}.{k}", v)

    for name, values in conf.items():
        table(name, values)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join(lines) + "\n")
    os.chmod(dest, 0o644)
    return dest

