"""Where an instance lives and how it is exposed: options and env vars of the CLI."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__

INSTANCE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
# Where the project's data files live (actions/, imageroot/): the source tree.
PROJECT_ROOT = Path(os.environ.get("MAIL_PROJECT_ROOT", Path(__file__).resolve().parents[2]))


def default_state_root() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/mailctl")
    return Path.home() / ".local/share/mailctl"


@dataclass(frozen=True)
class Instance:
    """One mail server instance: its name, state directory and network exposure."""

    name: str = "mail1"
    state_root: Path = field(default_factory=default_state_root)
    bind: str = ""  # host address for published ports; "" means all addresses
    port_offset: int = 0
    engine: str = "podman"
    version: str = __version__

    def __post_init__(self):
        if not INSTANCE_NAME.match(self.name):
            raise ValueError(f"instance name {self.name!r}: use lowercase letters, digits and '-'")
        if not 0 <= self.port_offset <= 60000:
            raise ValueError(f"port offset {self.port_offset}: must be between 0 and 60000")

    @classmethod
    def from_env(cls, **overrides) -> Instance:
        """Build from MAIL_* env vars; explicit (non-None) overrides win."""
        values = {
            "name": os.environ.get("MAIL_INSTANCE", "mail1"),
            "state_root": Path(os.environ["MAIL_STATE_DIR"]) if os.environ.get("MAIL_STATE_DIR")
            else default_state_root(),
            "bind": os.environ.get("MAIL_BIND", ""),
            "port_offset": int(os.environ.get("MAIL_PORT_OFFSET", "0") or 0),
            "engine": os.environ.get("MAIL_ENGINE", "podman"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["state_root"] = Path(values["state_root"])
        return cls(**values)

    # Paths inside the instance's own state directory.
    @property
    def state_dir(self) -> Path:
        return self.state_root / self.name

    @property
    def db_dir(self) -> Path:
        return self.state_dir / "db"

    @property
    def db_path(self) -> Path:
        return self.db_dir / "state.sqlite"

    @property
    def config_dir(self) -> Path:
        return self.state_dir / "config"

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    @property
    def tls_dir(self) -> Path:
        return self.state_dir / "tls"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "action.lock"

    def image(self, daemon: str) -> str:
        # MAIL_IMAGE_TAG lets a development tree run images it built under its own tag.
        return f"localhost/mail-{daemon}:{os.environ.get('MAIL_IMAGE_TAG') or self.version}"

    def container_name(self, daemon: str) -> str:
        return f"{self.name}-{daemon}"

    def volume_name(self, purpose: str) -> str:
        return f"{self.name}-{purpose}"

    def host_port(self, port: int) -> int:
        return port + self.port_offset

    @property
    def probe_address(self) -> str:
        """The address to reach published ports from this host."""
        return self.bind if self.bind not in ("", "0.0.0.0", "::") else "127.0.0.1"
