#!/usr/bin/env bash
# Start a Docker daemon in the background unless one already answers.
#
# The host has no systemd, so the docker.io package's unit never runs: this
# script starts /usr/sbin/dockerd by hand (data under /var/lib/docker, log in
# /tmp/dockerd.log) and waits up to 60 s for `docker info`. Idempotent: when a
# daemon answers it only says so. Exits non-zero with the reason when dockerd
# cannot start, so callers (tests/test_engine_docker.py) can skip with it.
#
#   tests/start-dockerd.sh
#   DOCKERD_IPTABLES=false tests/start-dockerd.sh   # only if iptables setup fails
#
# iptables works on this host (iptables-nft 1.8.9) and is the default. With
# DOCKERD_IPTABLES=false, ports published on 127.0.0.1 still answer (docker-proxy),
# but user networks get no MASQUERADE rule: the embedded DNS forwards outside names
# from the container's namespace and those queries time out, so postfix's reverse
# lookup of each client outlasts the health probe and the stack never becomes healthy.
set -uo pipefail

LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
DATA_ROOT=${DOCKERD_DATA_ROOT:-/var/lib/docker}
PIDFILE=/var/run/docker.pid
WAIT=60

fail() { echo "start-dockerd: $*" >&2; exit 1; }

if docker info >/dev/null 2>&1; then
    echo "start-dockerd: a Docker daemon already answers"
    exit 0
fi

[ "$(id -u)" = 0 ] || fail "must run as root to start dockerd"
command -v docker >/dev/null || fail "no docker client on PATH (apt-get install docker.io)"
DOCKERD=$(command -v dockerd || true)
[ -n "$DOCKERD" ] || fail "dockerd is not installed (apt-get install docker.io)"

# A dockerd we started earlier that is still coming up: wait for it, don't start another.
if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null \
        && grep -q dockerd "/proc/$(cat "$PIDFILE")/cmdline" 2>/dev/null; then
    echo "start-dockerd: dockerd (pid $(cat "$PIDFILE")) is running, waiting for it to answer"
else
    # A pid file left by a dead daemon makes dockerd refuse to start.
    rm -f "$PIDFILE"
    # With ip_forward off, dockerd turns it on AND sets the FORWARD policy to DROP,
    # which would cut podman's bridged networks on this host. Turning it on first
    # (as podman does too) keeps the policy as it is.
    if [ "$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)" = 0 ]; then
        echo 1 > /proc/sys/net/ipv4/ip_forward 2>/dev/null || true
    fi
    mkdir -p "$DATA_ROOT" || fail "cannot create the data root $DATA_ROOT"
    args=(--data-root "$DATA_ROOT" --pidfile "$PIDFILE" --host unix:///var/run/docker.sock)
    # cgroups v1 hybrid, no systemd: cgroupfs is the only driver that works.
    args+=(--exec-opt native.cgroupdriver=cgroupfs)
    if [ "${DOCKERD_IPTABLES:-true}" = false ]; then
        # Without iptables, published ports are served by docker-proxy (userland proxy).
        args+=(--iptables=false --userland-proxy=true)
    fi
    echo "start-dockerd: starting $DOCKERD ${args[*]} (log $LOG)"
    echo "=== $(date -Is) start-dockerd: $DOCKERD ${args[*]}" >>"$LOG"
    from_line=$(wc -l <"$LOG")
    # In /: the daemon outlives the test run, whose checkout may be removed.
    (cd / && exec setsid "$DOCKERD" "${args[@]}" >>"$LOG" 2>&1 </dev/null) &
    started=$!
fi

for _ in $(seq $((WAIT * 2))); do
    if docker info >/dev/null 2>&1; then
        echo "start-dockerd: dockerd is ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
        exit 0
    fi
    if [ -n "${started:-}" ] && ! kill -0 "$started" 2>/dev/null; then
        # This run's error lines, else its last lines; on one line.
        new=$(tail -n +"$((from_line + 1))" "$LOG")
        reason=$(grep -E 'level=(fatal|error)|failed' <<<"$new" | tail -2)
        [ -n "$reason" ] || reason=$(tail -2 <<<"$new")
        fail "dockerd exited at start: $(tr '\n' ' ' <<<"$reason")(log $LOG)"
    fi
    sleep 0.5
done
fail "dockerd did not answer within ${WAIT}s: see $LOG"
