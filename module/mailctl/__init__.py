"""mailctl: the runtime of the mail module (actions, state, rendering, engines, CLI)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mailctl")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"
