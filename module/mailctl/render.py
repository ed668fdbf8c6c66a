"""Render every daemon's configuration from the state, into generation directories.

Layout under <state>/config:
    gen-<n>/<daemon>/...   one complete rendering
    current -> gen-<n>     what the containers read (mounted at /config)
Swapping `current` is a single atomic rename, so a container never sees half
a configuration. The previous generation is kept until the next swap, for rollback.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
import shutil
import time
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .settings import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "imageroot" / "templates"


def postfix_network(network: str) -> str:
    """An IP or network as postfix reads it: canonical (host bits cleared: 10.0.0.1/24 ->
    10.0.0.0/24), IPv6 in brackets (2001:db8::/32 -> [2001:db8::]/32)."""
    if "/" in network:
        net = ipaddress.ip_network(network, strict=False)
        address, length = str(net.network_address), str(net.prefixlen)
    else:
        address, length = str(ipaddress.ip_address(network)), ""
    if ":" in address:
        address = f"[{address}]"
    return f"{address}/{length}" if length else address


def postfix_value(value: str) -> str:
    """A literal main.cf value: "$" doubled (postfix would expand $name), no line breaks."""
    if "\n" in value or "\r" in value:
        raise ValueError(f"a postfix parameter value cannot span lines: {value!r}")
    return value.replace("$", "$$")


@functools.cache
def _environment() -> Environment:
    """One environment per process: it keeps the compiled templates (a long-running process,
    the web API, compiles each once; jinja recompiles a template whose file changed)."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yesno"] = lambda v: "yes" if v else "no"
    env.filters["postfix_net"] = postfix_network
    env.filters["postfix_value"] = postfix_value
    return env


def render_into(target: Path, context: dict[str, Any]) -> None:
    """Render every template under imageroot/templates into `target` (a new directory)."""
    env = _environment()
    for source in sorted(TEMPLATES.rglob("*")):
        if source.is_dir() or source.name.startswith("_"):
            continue  # "_name" files are partials included by other templates
        relative = source.relative_to(TEMPLATES)
        dest = target / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix == ".j2":
            text = env.get_template(relative.as_posix()).render(**context)
            dest.with_suffix("").write_text(text)
            os.chmod(dest.with_suffix(""), 0o644)
        else:
            shutil.copyfile(source, dest)
            os.chmod(dest, 0o644)


def tree_digest(path: Path) -> str:
    """A digest of every file name and content below `path` ('' if it does not exist)."""
    if not path.exists():
        return ""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _keep_times_of_unchanged(staging: Path, current: Path | None) -> None:
    """A file rendered the same as in `current` keeps its modification time there: postfix
    waits before it reads a map configuration modified within the last second, in each
    process it starts after a reload, and most files do not change in an action."""
    if current is None:
        return
    for new in staging.rglob("*"):
        old = current / new.relative_to(staging)
        if new.is_file() and old.is_file() and new.read_bytes() == old.read_bytes():
            times = old.stat()
            os.utime(new, ns=(times.st_atime_ns, times.st_mtime_ns))


class ConfigTree:
    """The generations of rendered configuration of one instance."""

    def __init__(self, config_dir: Path):
        self.root = config_dir
        self.current_link = config_dir / "current"

    def current(self) -> Path | None:
        if self.current_link.is_symlink():
            return self.root / os.readlink(self.current_link)
        return None

    def stage(self, context: dict[str, Any]) -> Path:
        """Render a new generation next to the current one and return its path."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        staging = self.root / f"gen-{time.time_ns()}"
        staging.mkdir()
        try:
            render_into(staging, context)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _keep_times_of_unchanged(staging, self.current())
        return staging

    def changed_daemons(self, staging: Path, daemons: tuple[str, ...]) -> list[str]:
        """Daemons whose files differ between the current generation and `staging`."""
        current = self.current()
        return [
            d for d in daemons
            if current is None or tree_digest(current / d) != tree_digest(staging / d)
        ]

    def swap(self, staging: Path) -> Path | None:
        """Point `current` at `staging` atomically; return the previous generation."""
        previous = self.current()
        tmp_link = self.root / ".current.tmp"
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(staging.name)
        os.replace(tmp_link, self.current_link)
        return previous

    def restore(self, previous: Path | None, failed: Path) -> None:
        """Undo a swap: point back at `previous` and drop the failed generation."""
        if previous is not None:
            self.swap(previous)
        else:
            self.current_link.unlink(missing_ok=True)
        shutil.rmtree(failed, ignore_errors=True)

    def prune(self) -> None:
        """Remove every generation but the current one (and stale staging dirs)."""
        keep = self.current()
        for gen in self.root.glob("gen-*"):
            if gen != keep:
                shutil.rmtree(gen, ignore_errors=True)
