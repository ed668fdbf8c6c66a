"""Fault injection points for the crash and rollback tests (inert unless the env vars are set).

MAIL_FAULT_PAUSE=<point>   at that point, create <state>/fault-<point> and sleep, so a
                           test can SIGKILL the action exactly there.
MAIL_FAULT_BAD_POSTFIX=1   add a line postfix refuses to the staged main.cf, so the
                           config check fails as it would on a real bad value.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def pause_point(point: str, state_dir: Path) -> None:
    if os.environ.get("MAIL_FAULT_PAUSE") == point:
        (state_dir / f"fault-{point}").write_text(str(os.getpid()))
        time.sleep(600)


def corrupt_staging(staging: Path) -> None:
    if os.environ.get("MAIL_FAULT_BAD_POSTFIX") == "1":
        with open(staging / "postfix" / "main.cf", "a") as f:
            f.write("this line has no equals sign\n")
