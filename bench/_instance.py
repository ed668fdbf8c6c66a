"""A throw-away instance for the mail-flow benches (throughput.py, add_domain.py).

`BenchInstance` starts its own instance (default te1 on 127.0.0.1, ports +24000) with a
temporary state dir, configures example.org and one user through `mailctl run`, and
removes everything (`mailctl down --purge`) on exit, also on failure or Ctrl-C.
"""

from __future__ import annotations

import imaplib
import json
import os
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[1]
MAILCTL = str(ROOT / ".venv/bin/mailctl") if (ROOT / ".venv/bin/mailctl").exists() else "mailctl"
HOST = "127.0.0.1"
DOMAIN = "example.org"
USER, PASSWORD = "benchuser", "Bench-Pass-4711"


class BenchInstance:
    """`with BenchInstance("te1", 24000) as mail:` -> a running, configured instance."""

    def __init__(self, name: str, offset: int) -> None:
        self.name = name
        self.offset = offset
        self.state_dir = Path(tempfile.mkdtemp(prefix=f"mail-{name}-bench-"))
        self.env = {**os.environ, "MAIL_INSTANCE": name, "MAIL_STATE_DIR": str(self.state_dir),
                    "MAIL_BIND": HOST, "MAIL_PORT_OFFSET": str(offset), "MAIL_ENGINE": "podman"}

    def __enter__(self) -> BenchInstance:
        self.mailctl("down", "--purge")  # leftovers of an interrupted run
        try:
            self.mailctl("up", "--timeout", "300")
            self.run("configure-module", {"hostname": f"mail.{DOMAIN}", "user_domain": "local",
                                          "mail_domain": DOMAIN})
            self.run("add-user", {"user": USER, "password": PASSWORD})
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        subprocess.run([MAILCTL, "down", "--purge"], env=self.env, capture_output=True, check=False)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def mailctl(self, *args: str) -> str:
        """Run `mailctl ARGS` for this instance; stdout, or SystemExit naming the command."""
        p = subprocess.run([MAILCTL, *args], env=self.env, capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise SystemExit(f"bench: mailctl {' '.join(args[:2])} failed (exit {p.returncode}): "
                             f"{(p.stderr or p.stdout).strip()}")
        return p.stdout

    def run(self, action: str, data: dict) -> object:
        out = self.mailctl("run", action, "--data", json.dumps(data))
        return json.loads(out) if out.strip() else None

    def exec(self, daemon: str, *command: str) -> str:
        """Run a command in one of the instance's containers; stdout, or SystemExit."""
        p = subprocess.run(["podman", "exec", f"{self.name}-{daemon}", *command],
                           capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise SystemExit(f"bench: {' '.join(command)} in {daemon} failed: {p.stderr.strip()}")
        return p.stdout

    def logs(self, daemon: str) -> str:
        p = subprocess.run(["podman", "logs", f"{self.name}-{daemon}"], capture_output=True, text=True,
                           check=False)
        return p.stdout + p.stderr

    def port(self, port: int) -> int:
        return self.offset + port

    def cpu_seconds(self, daemon: str) -> float:
        """CPU time the daemon's container has used so far (its cgroup, v1 or v2)."""
        cgroup = subprocess.run(["podman", "inspect", "-f", "{{.State.CgroupPath}}", f"{self.name}-{daemon}"],
                                capture_output=True, text=True, check=True).stdout.strip().lstrip("/")
        v1 = Path("/sys/fs/cgroup/cpuacct") / cgroup / "cpuacct.usage"  # nanoseconds
        if v1.exists():
            return int(v1.read_text()) / 1e9
        stat = dict(line.split() for line in (Path("/sys/fs/cgroup") / cgroup / "cpu.stat").read_text().splitlines())
        return int(stat["usage_usec"]) / 1e6

    def imap(self) -> imaplib.IMAP4:
        """An IMAP session of the bench user, logged in after STARTTLS."""
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE  # the instance's self-signed certificate
        imap = imaplib.IMAP4(HOST, self.port(143), timeout=30)
        imap.starttls(tls)
        imap.login(USER, PASSWORD)
        return imap
