#!/usr/bin/env bash
# Build every daemon image of the mail module from Debian packages.
#
# No registry is reachable, so the Debian 12 base image is made here with
# mmdebstrap and imported; each daemon image is then built FROM it. The whole
# script is idempotent: the base is made only when its tag is missing, and the
# daemon builds reuse podman's layer cache, so a second run takes seconds.
#
#   ./build-images.sh            build with podman (default)
#   ./build-images.sh --docker   also load the images into a running Docker engine
set -euo pipefail
cd "$(dirname "$0")"

VERSION=$(cat VERSION)
# The daemon images' tag; MAIL_IMAGE_TAG builds a development tree's images beside the released ones.
TAG=${MAIL_IMAGE_TAG:-$VERSION}
DAEMONS=(redis openldap clamav rspamd dovecot postfix)
# The host's hard limits: runc refuses container limits above them.
NOFILE=$(ulimit -Hn)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
ULIMITS=(--ulimit "nofile=${NOFILE}:${NOFILE}" --ulimit "nproc=8192:8192")

base="localhost/mail-base:${VERSION}"
if ! podman image exists "$base"; then
    echo ">> making the Debian 12 base image $base"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$tmp/base.tar"
    podman import --quiet --change 'CMD ["/bin/bash"]' "$tmp/base.tar" "$base" >/dev/null
fi

for daemon in "${DAEMONS[@]}"; do
    image="localhost/mail-${daemon}:${TAG}"
    echo ">> building $image"
    podman build --quiet --layers "${ULIMITS[@]}" --build-arg "VERSION=${VERSION}" \
        -t "$image" -f "images/${daemon}/Containerfile" "images/${daemon}" >/dev/null
done

if [ "${1:-}" = "--docker" ]; then
    for daemon in "${DAEMONS[@]}"; do
        image="localhost/mail-${daemon}:${TAG}"
        id=$(podman image inspect --format '{{.Id}}' "$image")
        if [ "$(docker image inspect --format '{{index .Config.Labels "mail.podman-id"}}' "$image" 2>/dev/null)" != "$id" ]; then
            echo ">> loading $image into docker"
            # Label the copy with podman's id so an unchanged image is not loaded twice.
            podman save "$image" | docker load --quiet >/dev/null
            printf 'FROM %s\nLABEL mail.podman-id=%s\n' "$image" "$id" | docker build --quiet -t "$image" - >/dev/null
        fi
    done
fi
echo ">> images ready (version ${VERSION})"
