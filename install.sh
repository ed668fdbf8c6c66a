#!/usr/bin/env bash
# Install everything the mail module needs on a fresh Debian 12 machine, then
# build the daemon images. Idempotent: a second run only checks.
#
#   sudo ./install.sh          install, build images
#   sudo ./install.sh && mailctl up     ... and start a demo instance
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (sudo ./install.sh)" >&2
    exit 1
fi

PACKAGES=(
    # container engine: podman with runc (crun fails on cgroups v1 hybrid hosts)
    podman buildah runc mmdebstrap uidmap fuse-overlayfs slirp4netns netavark aardvark-dns catatonit
    # the optional second engine
    docker.io
    # the runtime
    python3 python3-venv python3-pip sqlite3 iproute2 openssl
    # backups (mailctl backup/restore)
    restic
    # protocol clients used by the tests and benchmarks
    swaks sieve-connect ldap-utils testssl.sh opendkim-tools redis-server redis-tools
    postfix
    # the browser of the web UI tests (driven by Playwright, which never downloads its own)
    chromium
)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo ">> installing ${missing[*]}"
    # Host packages must not start daemons of their own (postfix, redis, docker):
    # the mail module runs its daemons in containers, tests start what they need.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Podman: runc as runtime, netavark networking (written once, kept if present).
if [ ! -e /etc/containers/containers.conf ]; then
    mkdir -p /etc/containers
    cat > /etc/containers/containers.conf <<'CONF'
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
CONF
fi

# The Python runtime in a virtual environment, with the test tools.
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'
ln -sf "$PWD/.venv/bin/mailctl" /usr/local/bin/mailctl

./build-images.sh
echo ">> installed: run 'mailctl up' to start the demo instance"
