"""The instance's containers, volumes, ports and health checks, defined once as data.

Engine adapters receive these specs and turn them into podman or docker calls;
nothing here talks to an engine.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace

from .hostcheck import container_ulimits
from .settings import Instance

# The public ports: name -> (daemon, container port, implicit TLS).
PORTS: dict[str, tuple[str, int, bool]] = {
    "smtp": ("postfix", 25, False),
    "submission": ("postfix", 587, False),
    "smtps": ("postfix", 465, True),
    "imap": ("dovecot", 143, False),
    "imaps": ("dovecot", 993, True),
    "pop3": ("dovecot", 110, False),
    "pop3s": ("dovecot", 995, True),
    "sieve": ("dovecot", 4190, False),
    "rspamd": ("rspamd", 11334, False),
}
# Rspamd's web UI is reached through `mailctl serve` at /rspamd/ (behind its login);
# MAIL_PUBLISH_RSPAMD=1 publishes the controller port on the host as well, the old way.
UNPUBLISHED_BY_DEFAULT = ("rspamd",)
# The admin UI and HTTP API (`mailctl serve`, a host process), plus the port offset.
WEB_PORT = 9443


def published_port_names() -> tuple[str, ...]:
    """The names in PORTS that the instance publishes on the host."""
    publish_rspamd = os.environ.get("MAIL_PUBLISH_RSPAMD") == "1"
    return tuple(name for name in PORTS if name not in UNPUBLISHED_BY_DEFAULT or publish_rspamd)

# Ports a daemon serves only to the other daemons (their names in the rendered
# configuration: lmtp:inet:dovecot:24, inet:rspamd:11332, redis:6379...). `mailctl kube`
# makes a ClusterIP Service of them per daemon; LINKS says who may use them.
INTERNAL_PORTS: dict[str, dict[str, int]] = {
    "redis": {"redis": 6379},
    "openldap": {"ldap": 389},
    "clamav": {"clamd": 3310},
    "rspamd": {"milter": 11332, "normal": 11333, "controller": 11334},
    "dovecot": {"lmtp": 24, "sasl": 12345, "quota-status": 12340},
    "postfix": {"smtp": 25, "sieve-out": 10026},
}

# Who connects to whom, read from the rendered configuration: server daemon ->
# {client daemon: the INTERNAL_PORTS names it uses}. Nothing else crosses between the
# containers: clamav and rspamd parse untrusted mail, so neither may reach what it does
# not need (see network_layout). The host side (mailctl) reaches the daemons through
# `podman exec` and, for the LDAP directory and the Rspamd web UI proxy, at the daemon's
# address: the host is outside these rules.
LINKS: dict[str, dict[str, tuple[str, ...]]] = {
    "redis": {"rspamd": ("redis",)},  # rspamd local.d/redis.conf: Bayes, greylisting
    "openldap": {"postfix": ("ldap",), "dovecot": ("ldap",)},  # lookups and binds (embedded domain)
    "clamav": {"rspamd": ("clamd",)},  # rspamd local.d/antivirus.conf
    # postfix smtpd_milters; dovecot's IMAPSieve learning (sieve-pipe/rspamd-learn -> /learnspam)
    "rspamd": {"postfix": ("milter",), "dovecot": ("controller",)},
    # postfix virtual_transport, smtpd_sasl_path and the quota check_policy_service
    "dovecot": {"postfix": ("lmtp", "sasl", "quota-status")},
    # dovecot submission_host: what users' Sieve scripts send (vacation answers, redirects)
    "postfix": {"dovecot": ("sieve-out",)},
}
# Daemons that need an edge network: published ports (postfix, dovecot, rspamd's optional
# controller port) or the Internet (postfix: MX delivery; dovecot: imapsync; rspamd: DNS
# lists; clamav: signature mirrors). redis and openldap live on their service network only.
EDGE = ("clamav", "rspamd", "dovecot", "postfix")
# The label of the networks of this layout (see Stack.network_labels).
LAYOUT_LABEL, LAYOUT = "mail.network-layout", "per-link"


@dataclass(frozen=True)
class NetworkSpec:
    """A network of the instance. `internal` ones reach no other network (the host does not
    forward what comes from them) and carry no published port; the others are isolated from
    every other isolated network but reach the Internet."""

    name: str
    internal: bool
    daemon: str  # whose network it is
    members: tuple[str, ...]  # daemons attached to it


def service_network(instance: str, daemon: str) -> str:
    """The internal network where `daemon` serves its clients (LINKS), named after it."""
    return f"{instance}-{daemon}"


def edge_network(instance: str, daemon: str) -> str:
    """`daemon`'s own network to the outside. postfix's is the instance's network, named
    after the instance: where the public SMTP ports land, as before per-link networks."""
    return instance if daemon == "postfix" else f"{instance}-{daemon}-edge"


def servers_of(daemon: str) -> tuple[str, ...]:
    """The daemons `daemon` connects to, in start order."""
    return tuple(server for server in DAEMONS if daemon in LINKS.get(server, {}))


def home_network(instance: str, daemon: str) -> str:
    """Where the daemon has its fixed address and its name: where its clients reach it."""
    return service_network(instance, daemon) if daemon in LINKS else edge_network(instance, daemon)


def daemon_networks(instance: str, daemon: str) -> tuple[str, ...]:
    """Every network `daemon` joins, the first one its primary (default route, DNS)."""
    networks = [edge_network(instance, daemon)] if daemon in EDGE else []
    if daemon in LINKS:
        networks.append(service_network(instance, daemon))
    networks += [service_network(instance, server) for server in servers_of(daemon)]
    return tuple(networks)


def network_layout(instance: str) -> tuple[NetworkSpec, ...]:
    """The instance's networks: an internal service network per daemon that serves others
    (itself and its LINKS clients), and an edge network per EDGE daemon (itself alone)."""
    networks = [NetworkSpec(edge_network(instance, d), False, d, (d,)) for d in DAEMONS if d in EDGE]
    networks += [NetworkSpec(service_network(instance, d), True, d, (d, *sorted(LINKS[d])))
                 for d in DAEMONS if d in LINKS]
    return tuple(networks)


# Each image's CMD (images/<daemon>/Containerfile), for runtimes that run a step before
# it (`mailctl kube`: a Kubernetes `command` drops the image's CMD unless `args` repeat it).
COMMANDS: dict[str, tuple[str, ...]] = {
    "redis": ("redis-server", "/config/current/redis/redis.conf"),
    **{d: ("/usr/local/bin/entrypoint",) for d in ("openldap", "clamav", "rspamd", "dovecot", "postfix")},
}

# Every image has these scripts (images/<daemon>/): `reload` applies /config/current (or,
# with `--check DIR`, only checks the files in DIR); `healthcheck` exits 0 when it serves.
RELOAD_COMMAND = ("/usr/local/bin/reload",)
HEALTH_COMMAND = ("/usr/local/bin/healthcheck",)

# Start order: what a daemon connects to is started before it.
DAEMONS = ("redis", "openldap", "clamav", "rspamd", "dovecot", "postfix")

# Restart policy of every container (see ContainerSpec.restart_policy).
RESTART_POLICY = "unless-stopped"

# Secrets files (under the instance's secrets dir) mounted into each daemon at /run/secrets/.
SECRETS: dict[str, tuple[str, ...]] = {
    "redis": ("redis-auth.conf",),
    "openldap": ("ldap-admin-password", "ldap-reader-password"),
    "rspamd": ("rspamd-controller.inc", "rspamd-redis.inc"),
    "dovecot": ("dovecot-master-users", "ldap-bind-password", "dovecot-rspamd-password", "ldap-reader-password"),
    "postfix": ("postfix-sasl_passwd.map", "ldap-bind-password", "ldap-reader-password"),
}


def redis_cli(*args: str) -> list[str]:
    """A redis-cli command to exec in the redis container, authenticated with the password of
    its secret file (through the environment: never on a command line)."""
    script = 'REDISCLI_AUTH=$(sed -n "s/^requirepass //p" /run/secrets/redis-auth.conf) exec redis-cli "$@"'
    return ["sh", "-c", script, "redis-cli", *args]


# Secret directories (under the instance's secrets dir, mode 0700) mounted read-only
# at /run/secrets/<name>: their files may come and go while the container runs.
SECRET_DIRS: dict[str, tuple[str, ...]] = {
    "rspamd": ("dkim",),  # DKIM private keys, one per domain (dkim.py)
}
# ldap-bind-password: the selected user domain's bind password (empty for `local`),
# put in place of __SECRET_ldap-bind-password__ in the rendered LDAP files by the
# images' reload scripts; external_ldap.sync_bind_secret keeps it current.
# ldap-reader-password: the password of the embedded directory's read-only DN (the
# embedded directory refuses anonymous reads). redis-auth.conf / rspamd-redis.inc: the
# Redis password, for redis (requirepass) and rspamd, the only daemon that uses Redis.

# Named volumes: daemon -> {purpose: mount point}.
VOLUMES: dict[str, dict[str, str]] = {
    "redis": {"redis": "/data"},
    "openldap": {"ldap": "/var/lib/ldap"},
    "clamav": {"clamav": "/var/lib/clamav"},
    "rspamd": {"rspamd": "/var/lib/rspamd"},
    "dovecot": {"vmail": "/var/lib/vmail"},
    "postfix": {"queue": "/var/spool/postfix"},
}


@dataclass(frozen=True)
class Mount:
    source: str  # host path (bind) or volume name
    target: str
    kind: str = "bind"  # "bind" or "volume"
    read_only: bool = False


@dataclass(frozen=True)
class PortBinding:
    name: str
    container_port: int
    host_ip: str
    host_port: int
    tls: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    daemon: str
    name: str
    image: str
    hostname: str
    # every network it joins (the first one its primary) and the one of its fixed
    # address and aliases (see daemon_networks, home_network)
    networks: tuple[str, ...]
    home_network: str
    aliases: tuple[str, ...]
    mounts: tuple[Mount, ...]
    ports: tuple[PortBinding, ...]
    ulimits: tuple[tuple[str, int, int], ...]
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    health_command: tuple[str, ...] = HEALTH_COMMAND
    # (daemon, address) of itself and of the daemons it connects to, for /etc/hosts; () means DNS
    addresses: tuple[tuple[str, str], ...] = ()
    # The engine starts the container again whenever its daemon dies (crash, OOM kill,
    # kill -9), but not after an operator's `stop`/`kill` through the engine, which both
    # podman and docker record as a wanted stop.
    restart_policy: str = RESTART_POLICY

    def with_addresses(self, addresses: dict[str, str]) -> ContainerSpec:
        """This spec with the fixed addresses of itself and its servers (and the spec hash
        that covers them): the others' names stay unknown in its /etc/hosts."""
        known = {self.daemon, *servers_of(self.daemon)}
        spec = replace(self, addresses=tuple(sorted((d, a) for d, a in addresses.items() if d in known)),
                       labels={k: v for k, v in self.labels.items() if k != "mail.spec-hash"})
        return replace(spec, labels={**spec.labels, "mail.spec-hash": spec.spec_hash()})

    def spec_hash(self) -> str:
        """A digest of the spec: a container whose label differs must be recreated."""
        data = asdict(self)
        data["labels"] = {k: v for k, v in self.labels.items() if k != "mail.spec-hash"}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Stack:
    instance: Instance
    network: str  # the instance's network (postfix's edge; `mailctl kube --podman` uses it alone)
    networks: tuple[NetworkSpec, ...]
    volumes: tuple[str, ...]
    containers: tuple[ContainerSpec, ...]

    def container(self, daemon: str) -> ContainerSpec:
        return next(c for c in self.containers if c.daemon == daemon)

    @property
    def labels(self) -> dict[str, str]:
        return {"mail.instance": self.instance.name}

    @property
    def network_labels(self) -> dict[str, str]:
        """Labels of its networks: the layout label tells them from the one shared network
        that instances had before per-link networks."""
        return {**self.labels, LAYOUT_LABEL: LAYOUT}


def build_stack(instance: Instance, hostname: str) -> Stack:
    """Describe every container of `instance`; `hostname` is the mail server's FQDN."""
    base_labels = {"mail.instance": instance.name}
    containers = []
    volumes = []
    published = published_port_names()
    for daemon in DAEMONS:
        mounts = [
            Mount(str(instance.config_dir), "/config", read_only=True),
            Mount(str(instance.tls_dir), "/tls", read_only=True),
        ]
        if daemon in ("postfix", "dovecot"):  # they read lookups from the state at query time
            mounts.append(Mount(str(instance.db_dir), "/state", read_only=True))
        for secret in SECRETS.get(daemon, ()):
            mounts.append(Mount(str(instance.secrets_dir / secret), f"/run/secrets/{secret}", read_only=True))
        for secret_dir in SECRET_DIRS.get(daemon, ()):
            mounts.append(Mount(str(instance.secrets_dir / secret_dir), f"/run/secrets/{secret_dir}", read_only=True))
        for purpose, target in VOLUMES[daemon].items():
            volume = instance.volume_name(purpose)
            volumes.append(volume)
            mounts.append(Mount(volume, target, kind="volume"))
        ports = tuple(
            PortBinding(name, cport, instance.bind, instance.host_port(cport), tls)
            for name, (owner, cport, tls) in PORTS.items()
            if owner == daemon and name in published
        )
        spec = ContainerSpec(
            daemon=daemon,
            name=instance.container_name(daemon),
            image=instance.image(daemon),
            hostname=hostname if daemon == "postfix" else f"{daemon}.{instance.name}",
            networks=daemon_networks(instance.name, daemon),
            home_network=home_network(instance.name, daemon),
            aliases=(daemon,),
            mounts=tuple(mounts),
            ports=ports,
            ulimits=container_ulimits(),
            labels={**base_labels, "mail.daemon": daemon},
        )
        labels = {**spec.labels, "mail.spec-hash": spec.spec_hash()}
        containers.append(ContainerSpec(**{**spec.__dict__, "labels": labels}))
    return Stack(instance, instance.name, network_layout(instance.name), tuple(volumes), tuple(containers))
