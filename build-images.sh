#!/usr/bin/env bash
# Build every daemon image of the mail module from Debian packages.
#
# No registry is reachable, so the Debian 12 base image is made here with
# mmdebstrap and imported; each daemon image is then built FROM it. The whole
# script is idempotent: the base is made only when its tag is missing, and the
# daemon builds reuse podman's layer cache, so a second run takes seconds.
#
# Then the module image localhost/mail:<tag> is made the NethServer 8 way: an
# image FROM scratch holding imageroot/ (templates, systemd units, actions and the
# runtime as Python wheels), ui/ and ui-manifest.json, with org.nethserver.* labels
# that list the daemon images and what the module asks of a node.
#
#   ./build-images.sh              build with podman (default)
#   ./build-images.sh --docker     also load the images into a running Docker engine
#   ./build-images.sh --save DIR   also write DIR/mail-<tag>.tar: `podman save` of the
#                                  module image and the daemon images (`podman load -i`)
set -euo pipefail
cd "$(dirname "$0")"

DOCKER=
SAVE_DIR=
while [ $# -gt 0 ]; do
    case "$1" in
        --docker) DOCKER=1 ;;
        --save) SAVE_DIR=${2:?--save needs a directory}; shift ;;
        *) echo "build-images.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

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
    # images/common (shell helpers shared by the image scripts) is the build context "common".
    podman build --quiet --layers "${ULIMITS[@]}" --build-arg "VERSION=${VERSION}" \
        --build-context common=images/common \
        -t "$image" -f "images/${daemon}/Containerfile" "images/${daemon}" >/dev/null
done

# The module image. Its runtime is the mailctl wheel and the wheels it depends on,
# installed offline into a virtual environment by `mailctl install-module`.
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
module="localhost/mail:${TAG}"
echo ">> building $module"
work=$(mktemp -d)
trap 'rm -rf "$work" "${tmp:-}"' EXIT
mkdir -p "$work/imageroot/python" "$work/ui"
cp -r imageroot/. "$work/imageroot/"
cp -r actions "$work/imageroot/actions"
find "$work/imageroot" -name __pycache__ -prune -exec rm -rf {} +
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$work/imageroot/python" . >/dev/null
# The admin UI's static files, when this tree has them.
if [ -d module/mailctl/web/static ]; then
    cp -r module/mailctl/web/static/. "$work/ui/"
fi
cp ui-manifest.json "$work/ui-manifest.json"
images=()
for daemon in "${DAEMONS[@]}"; do images+=("localhost/mail-${daemon}:${TAG}"); done
# Ports a node must allocate: the HTTP API/admin UI (9443, which also proxies Rspamd's UI);
# the mail ports themselves are the fixed standard ones (hence max-per-node=1).
container=$(buildah from scratch)
buildah add --quiet "$container" "$work/imageroot" /imageroot
buildah add --quiet "$container" "$work/ui" /ui
buildah add --quiet "$container" "$work/ui-manifest.json" /ui-manifest.json
buildah config --entrypoint=/ \
    --label="org.nethserver.images=${images[*]}" \
    --label="org.nethserver.tcp-ports-demand=1" \
    --label="org.nethserver.rootfull=1" \
    --label="org.nethserver.max-per-node=1" \
    --label="org.nethserver.volumes=vmail queue" \
    --label="org.nethserver.authorizations=node:fwadm traefik@node:fulladm cluster:accountconsumer" \
    --label="org.opencontainers.image.version=${VERSION}" \
    --label="org.opencontainers.image.title=mail" \
    "$container"
buildah commit --quiet --rm "$container" "$module" >/dev/null

if [ -n "$SAVE_DIR" ]; then
    mkdir -p "$SAVE_DIR"
    archive="$SAVE_DIR/mail-${TAG}.tar"
    echo ">> saving $module and the daemon images to $archive"
    rm -f "$archive"
    podman save --quiet --multi-image-archive -o "$archive" "$module" "${images[@]}"
fi

if [ -n "$DOCKER" ]; then
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
