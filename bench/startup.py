"""Startup time and idle memory of a whole instance, against the targets.

    .venv/bin/python bench/startup.py [--engine podman|docker]

On a throw-away instance (bench1, 127.0.0.1, ports +25000, its own temporary state dir):

- baseline: a bare container from the mail-base image running `true` (median of 3), so
  the start times below can be read as ratios of what the engine itself costs;
- cold start: `mailctl up` with no containers, no volumes and a fresh state dir, until
  every daemon is healthy;
- warm start: `mailctl down` (volumes kept), then `mailctl up` again;
- idle memory: 20 s after the warm start, each container's memory from the engine
  adapter's stats() (usage minus inactive page cache).

Targets: every daemon healthy in < 30 s; total idle memory < 600 MiB; and against the
reference of issue #14 (cold 4.6 s, idle 96 MiB) no more than 10% over. The instance is
removed at the end (`mailctl down --purge`), also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mailctl import __version__
from mailctl.engines import get_engine
from mailctl.hostcheck import container_ulimits
from mailctl.stack import DAEMONS

ROOT = Path(__file__).resolve().parents[1]

INSTANCE = "bench1"
OFFSET = 25000
IDLE_WAIT = 20
TARGET_HEALTHY_S = 30.0
TARGET_IDLE_MIB = 600.0
# Issue #14: cold start and idle memory within 10% of the figures of its filing.
REFERENCE_COLD_S = 4.6
REFERENCE_IDLE_MIB = 96.0
MAILCTL = str(ROOT / ".venv/bin/mailctl") if (ROOT / ".venv/bin/mailctl").exists() else "mailctl"
BASE_IMAGE = f"localhost/mail-base:{__version__}"
MIB = 1024 * 1024


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


class Mailctl:
    def __init__(self, engine: str, state_dir: Path) -> None:
        self.engine = engine
        self.env = {
            **os.environ,
            "MAIL_INSTANCE": INSTANCE,
            "MAIL_STATE_DIR": str(state_dir),
            "MAIL_BIND": "127.0.0.1",
            "MAIL_PORT_OFFSET": str(OFFSET),
            "MAIL_ENGINE": engine,
        }

    def __call__(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([MAILCTL, *args, "--engine", self.engine], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def timed_up(self) -> tuple[float, dict[str, float]]:
        """Seconds from `mailctl up` to its exit (all healthy), and each daemon's time to healthy."""
        start = time.monotonic()
        r = self("up", "--timeout", "300")
        elapsed = time.monotonic() - start
        if r.returncode != 0:
            raise SystemExit(f"bench: mailctl up failed (exit {r.returncode}):\n{r.stderr}")
        per_daemon = {m[1]: float(m[2]) for m in re.finditer(r"(\w+)\s+healthy \(([\d.]+)s\)", r.stderr)}
        return elapsed, per_daemon


def ensure_base_image(engine: str) -> None:
    """The baseline runs mail-base; `build-images.sh --docker` loads only the daemon images."""
    if subprocess.run([engine, "image", "inspect", BASE_IMAGE], capture_output=True, check=False).returncode == 0:
        return
    if engine == "docker":
        print(f"bench: loading {BASE_IMAGE} from podman into docker", file=sys.stderr)
        save = subprocess.Popen(["podman", "save", BASE_IMAGE], stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "load", "--quiet"], stdin=save.stdout, capture_output=True, check=False)
        save.stdout.close()
        if save.wait() == 0 and load.returncode == 0:
            return
    raise SystemExit(f"bench: image {BASE_IMAGE} is missing from {engine}: run ./build-images.sh")


def baseline(engine: str, runs: int = 3) -> list[float]:
    """Wall time of `<engine> run --rm mail-base true`, as the daemons' containers are run."""
    args = [engine, "run", "--rm", "--network=none"]
    for name, soft, hard in container_ulimits():
        args += ["--ulimit", f"{name}={soft}:{hard}"]
    times = []
    for _ in range(runs):
        start = time.monotonic()
        r = subprocess.run([*args, BASE_IMAGE, "true"], capture_output=True, text=True, check=False)
        times.append(time.monotonic() - start)
        if r.returncode != 0:
            raise SystemExit(f"bench: bare container failed: {r.stderr.strip()}")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("podman", "docker"), default="podman")
    engine_name = parser.parse_args().engine

    engine = get_engine(engine_name)
    missing = [d for d in DAEMONS if not engine.image_exists(f"localhost/mail-{d}:{__version__}")]
    if missing:
        hint = "./build-images.sh" + (" --docker" if engine_name == "docker" else "")
        raise SystemExit(f"bench: missing images for {', '.join(missing)}: run {hint}")
    ensure_base_image(engine_name)

    state_dir = Path(tempfile.mkdtemp(prefix=f"mail-{INSTANCE}-"))
    mailctl = Mailctl(engine_name, state_dir)
    # A run interrupted earlier may have left the instance behind: start from nothing.
    mailctl("down", "--purge")
    try:
        base = baseline(engine_name)
        base_med = statistics.median(base)

        cold, cold_daemons = mailctl.timed_up()
        r = mailctl("down")
        if r.returncode != 0:
            raise SystemExit(f"bench: mailctl down failed:\n{r.stderr}")
        warm, warm_daemons = mailctl.timed_up()

        time.sleep(IDLE_WAIT)
        memory = {}
        for info in sorted(engine.list_containers(INSTANCE), key=lambda c: DAEMONS.index(c.daemon)):
            memory[info.name] = engine.stats(info.name) / MIB
        total = sum(memory.values())
    finally:
        mailctl("down", "--purge")
        shutil.rmtree(state_dir, ignore_errors=True)

    print(f"Startup and idle memory of instance {INSTANCE} on {engine_name} (mail {__version__})")
    print()
    print(f"baseline: bare mail-base container running `true`: median {base_med:.2f} s "
          f"({', '.join(f'{t:.2f}' for t in base)})")
    print()
    print(f"{'start':<6} {'all healthy':>12} {'x baseline':>11}  target < {TARGET_HEALTHY_S:.0f} s")
    for label, secs in (("cold", cold), ("warm", warm)):
        print(f"{label:<6} {secs:>10.1f} s {secs / base_med:>10.1f}x  {mark(secs < TARGET_HEALTHY_S)}")
    print()
    print("time to healthy per daemon, from the first container start (s):")
    print(f"  {'daemon':<10} {'cold':>6} {'warm':>6}")
    for d in DAEMONS:
        print(f"  {d:<10} {cold_daemons.get(d, float('nan')):>6.1f} {warm_daemons.get(d, float('nan')):>6.1f}")
    print()
    print(f"idle memory, {IDLE_WAIT} s after the warm start:")
    print(f"  {'container':<18} {'MiB':>8}")
    for name, mib in memory.items():
        print(f"  {name:<18} {mib:>8.1f}")
    print(f"  {'total':<18} {total:>8.1f}  target < {TARGET_IDLE_MIB:.0f} MiB  {mark(total < TARGET_IDLE_MIB)}")
    print()
    print(f"against the reference (cold {REFERENCE_COLD_S} s, idle {REFERENCE_IDLE_MIB:.0f} MiB; within +10%):")
    print(f"  cold start {cold:.1f} s = {cold / REFERENCE_COLD_S:.2f}x  {mark(cold <= REFERENCE_COLD_S * 1.1)}")
    idle_ok = total <= REFERENCE_IDLE_MIB * 1.1
    print(f"  idle memory {total:.1f} MiB = {total / REFERENCE_IDLE_MIB:.2f}x  {mark(idle_ok)}")
    return 0 if cold < TARGET_HEALTHY_S and warm < TARGET_HEALTHY_S and total < TARGET_IDLE_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
