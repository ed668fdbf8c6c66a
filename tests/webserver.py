"""`mailctl serve` for tests: start it for a test instance, log in, talk HTTPS to it.

Shared by the API tests (test_web_*.py) and the browser tests (test_ui_browser.py).
The client trusts exactly the instance's certificate, so every test also checks that
the server presents it.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from conftest import MAILCTL, Cli

# Extra servers (not the instance's own 9443 + offset) take ports from here up.
EXTRA_PORT_BASE = int(os.environ.get("MAIL_TEST_WEB_PORT", "23380"))


@dataclass
class WebServer:
    cli: Cli
    port: int
    log_path: Path
    process: subprocess.Popen | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def cert_path(self) -> Path:
        return self.cli.state_dir / self.cli.instance / "tls" / "cert.pem"

    def tls(self) -> ssl.SSLContext:
        """Trust the instance's certificate only (it names the mail host, not 127.0.0.1)."""
        ctx = ssl.create_default_context(cafile=str(self.cert_path))
        ctx.check_hostname = False
        return ctx

    def start(self, timeout: float = 30) -> WebServer:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([MAILCTL, "serve", "--port", str(self.port)],
                                        env={**self.cli.env, **self.extra_env}, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mailctl serve exited {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                with self.client() as c:
                    c.get("/api/session")
                return self
            except (httpx.TransportError, ssl.SSLError, FileNotFoundError):
                time.sleep(0.2)
        raise RuntimeError(f"mailctl serve did not answer on {self.port} in {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.tls(), timeout=120, **kw)

    def admin_password(self) -> str:
        r = self.cli("admin-password")
        assert r.code == 0, r.stderr
        return r.stdout.strip()

    def login(self, username: str = "admin", password: str | None = None) -> httpx.Client:
        """A client with a session; every POST it sends carries the CSRF token."""
        client = self.client()
        r = client.post("/api/login", json={"username": username,
                                            "password": self.admin_password() if password is None else password})
        assert r.status_code == 200, r.text
        client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return client


def start_server(cli: Cli, tmp_dir: Path, port: int | None = None, **extra_env: str) -> WebServer:
    """`mailctl serve` for `cli`'s instance on `port` (default: 9443 + the instance's offset)."""
    return WebServer(cli, port or cli.port(9443), tmp_dir / f"serve-{port or 'default'}.log",
                     extra_env=extra_env).start()
