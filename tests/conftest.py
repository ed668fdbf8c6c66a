"""Shared fixtures: a `mailctl` runner and running instances on loopback with a port offset.

Container tests share one instance (`ts1`, ports +21000) for the whole session, so the
stack starts once; tests that need their own life cycle make one with `fresh_instance`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAILCTL = str(ROOT / ".venv/bin/mailctl") if (ROOT / ".venv/bin/mailctl").exists() else "mailctl"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@dataclass
class Cli:
    """Runs `mailctl` for one instance, through the documented env vars."""

    instance: str
    state_dir: Path
    port_offset: int
    bind: str = "127.0.0.1"
    engine: str = "podman"
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "MAIL_INSTANCE": self.instance,
            "MAIL_STATE_DIR": str(self.state_dir),
            "MAIL_BIND": self.bind,
            "MAIL_PORT_OFFSET": str(self.port_offset),
            "MAIL_ENGINE": self.engine,
            "MAIL_VALIDATE_OUTPUT": "1",  # every action output is checked against its schema
            **self.extra_env,
        }

    def __call__(self, *args: str, input: str | None = None, timeout: float = 600) -> Result:
        p = subprocess.run([MAILCTL, *args], capture_output=True, text=True, env=self.env,
                           input=input, timeout=timeout)
        return Result(p.returncode, p.stdout, p.stderr)

    def run(self, action: str, data=None, expect: int | None = 0):
        """`mailctl run ACTION --data JSON`; returns parsed output when `expect` is 0."""
        args = ["run", action] + ([] if data is None else ["--data", json.dumps(data)])
        r = self(*args)
        if expect is not None:
            assert r.code == expect, f"{action} exit {r.code}\nstdout: {r.stdout}\nstderr: {r.stderr}"
        if expect == 0:
            return json.loads(r.stdout) if r.stdout.strip() else None
        return r

    def exec(self, daemon: str, *command: str) -> str:
        """Run a command in one of the instance's containers; return its stdout."""
        p = subprocess.run(["podman", "exec", f"{self.instance}-{daemon}", *command],
                           capture_output=True, text=True, check=False)
        return p.stdout

    def port(self, port: int) -> int:
        return self.port_offset + port

    @property
    def db_path(self) -> Path:
        return self.state_dir / self.instance / "db" / "state.sqlite"


def _engine_leftovers(instance: str) -> None:
    """Remove containers/network/volumes of `instance` left by an interrupted run."""
    label = f"label=mail.instance={instance}"
    containers = subprocess.run(["podman", "ps", "-aq", "--filter", label],
                                capture_output=True, text=True).stdout.split()
    if containers:
        subprocess.run(["podman", "rm", "-f", *containers], capture_output=True)
    volumes = subprocess.run(["podman", "volume", "ls", "-q", "--filter", label],
                             capture_output=True, text=True).stdout.split()
    if volumes:
        subprocess.run(["podman", "volume", "rm", "-f", *volumes], capture_output=True)
    networks = subprocess.run(["podman", "network", "ls", "-q", "--filter", label],
                              capture_output=True, text=True).stdout.split()
    subprocess.run(["podman", "network", "rm", "-f", instance, *networks], capture_output=True)


@pytest.fixture(scope="session")
def fresh_instance():
    """Factory: make (and optionally start) a new instance; everything is removed at the end."""
    made: list[Cli] = []

    def make(name: str, offset: int, up: bool = True) -> Cli:
        name, offset = TEST_PREFIX + name, offset + TEST_OFFSET_DELTA
        _engine_leftovers(name)
        cli = Cli(name, Path(tempfile.mkdtemp(prefix=f"mail-{name}-")), offset)
        made.append(cli)
        if up:
            r = cli("up", timeout=300)
            assert r.code == 0, f"mailctl up failed:\n{r.stderr}"
        return cli

    yield make
    for cli in made:
        cli("down", "--purge")
        _engine_leftovers(cli.instance)
        shutil.rmtree(cli.state_dir, ignore_errors=True)


# Parallel runs on one host keep apart with MAIL_TEST_PREFIX (prepended to every test
# instance name) and MAIL_TEST_OFFSET_DELTA (added to every test instance's port offset).
TEST_PREFIX = os.environ.get("MAIL_TEST_PREFIX", "")
TEST_OFFSET_DELTA = int(os.environ.get("MAIL_TEST_OFFSET_DELTA", "0"))
TEST_INSTANCE = os.environ.get("MAIL_TEST_INSTANCE", "ts1")
TEST_OFFSET = int(os.environ.get("MAIL_TEST_OFFSET", "21000"))


@pytest.fixture(scope="session")
def mail(fresh_instance) -> Cli:
    """The shared running instance (ts1 on 127.0.0.1, ports +21000 by default)."""
    return fresh_instance(TEST_INSTANCE, TEST_OFFSET)
