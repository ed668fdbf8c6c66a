"""The action runner: validate -> lock -> transaction -> render/check/swap/reload -> commit.

Every action is a folder `actions/<name>/` with its JSON schemas and a
`handler.py` defining `run(ctx, data)`. The handler changes the state through
`ctx.store` inside one SQLite transaction; the runner derives and applies the
daemon configuration from it. Any failure rolls back the transaction and puts
the previous configuration back, so an action either happens whole or not at all.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any

from . import schemas
from .apply import Applier
from .engines import Engine, get_engine
from .errors import MailError, NotImplementedAction, ValidationFailed
from .faults import pause_point
from .redact import redact_errors
from .schemas import validation_errors
from .secrets import ensure_secrets
from .settings import Instance
from .state import Store

Progress = Callable[[int], None]

log = logging.getLogger(__name__)


@dataclass
class ActionContext:
    """What a handler gets: the instance, its state in an open transaction, helpers."""

    instance: Instance
    store: Store
    progress: Progress
    # Daemons to reload even if their files did not change (e.g. new certificate).
    reload: set[str] = field(default_factory=set)
    # Set by handlers whose change lives outside the state database (secrets, TLS files).
    force_apply: bool = False
    # Undo steps for changes outside the database (LDAP entries, secret files), run
    # newest first if the action fails after making them.
    undo: list[Callable[[], None]] = field(default_factory=list)
    _engine: Engine | None = None
    _applier: Applier | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = get_engine(self.instance.engine)
        return self._engine

    @property
    def applier(self) -> Applier:
        """The runner's applier: undo steps of files read at reload call its reload_after_undo."""
        if self._applier is None:
            self._applier = Applier(self.instance, self.engine)
        return self._applier

    def reject(self, field_name: str, error: str, value: Any = None, message: str = "") -> None:
        """Refuse the input (exit 10) with one NS8 error naming `field_name`."""
        raise ValidationFailed([{
            "field": field_name, "parameter": field_name.rsplit(".", 1)[-1],
            "value": value, "error": error, **({"message": message} if message else {}),
        }])


def _load_handler(action: str) -> ModuleType:
    """The action's handler module (the caller has checked that the action exists)."""
    if not is_implemented(action):
        raise NotImplementedAction(f"action {action!r} is not implemented yet")
    return _import(str(schemas.ACTIONS_DIR / action / "handler.py"))


@cache
def _import(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"mailctl_action_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def is_implemented(action: str) -> bool:
    return (schemas.ACTIONS_DIR / action / "handler.py").exists()


def normalize_input(data: Any) -> Any:
    """NS8 clients send "" or nothing for actions without input."""
    return {} if data in ("", None) else data


# Seconds an action waits for another action of the same instance to finish.
LOCK_TIMEOUT = float(os.environ.get("MAIL_LOCK_TIMEOUT", "900"))


class InstanceBusy(MailError):
    """Another action held an instance's lock for longer than the lock timeout."""


@contextmanager
def instance_lock(instance: Instance, timeout: float | None = None) -> Iterator[None]:
    """One action at a time per instance, across processes; wait at most `timeout` seconds."""
    timeout = LOCK_TIMEOUT if timeout is None else timeout
    instance.state_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with open(instance.lock_path, "a") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise InstanceBusy(f"instance {instance.name} is busy with another action "
                                       f"(waited {timeout:.0f}s)") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def instance_locks(instances: list[Instance], timeout: float | None = None) -> Iterator[None]:
    """The locks of several instances, always taken in the same order (state dir path).

    Two actions that each need two instances (clone-module A<-B and B<-A) then never
    hold one lock each while waiting for the other's.
    """
    ordered = sorted({str(i.state_dir): i for i in instances}.items())
    with ExitStack() as stack:
        for _, instance in ordered:
            stack.enter_context(instance_lock(instance, timeout))
        yield


def run_action(instance: Instance, action: str, data: Any = None, progress: Progress | None = None) -> Any:
    """Run one action to completion and return its output (see the module docstring)."""
    progress = progress or (lambda _: None)
    if action not in schemas.action_names():
        raise MailError(f"unknown action {action!r}: 'mailctl actions' lists them")
    data = normalize_input(data)
    try:
        errors = validation_errors(action, "input", data)
        if errors:
            raise ValidationFailed(errors)
        handler = _load_handler(action)
        # A handler that works on other instances too (clone-module) names them.
        others = handler.other_instances(instance, data) if hasattr(handler, "other_instances") else []
        with instance_locks([instance, *others]):
            ensure_secrets(instance)
            store = Store(instance.db_path)
            try:
                return _run_locked(instance, store, handler, action, data, progress)
            finally:
                store.close()
    except ValidationFailed as exc:
        # Whoever refused the input, no password goes back in the error list.
        raise ValidationFailed(redact_errors(exc.errors, data)) from None


def undo_steps(action: str, steps: list[Callable[[], None]]) -> list[str]:
    """Run an action's undo steps, newest first. One that fails does not stop the others
    and is logged (stderr; the agent keeps it with the task), since what it should have
    put back is now left to the administrator. Returns the failures, for tests."""
    failures = []
    for step in reversed(steps):
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - keep undoing the rest; the action's error is raised
            name = getattr(step, "__qualname__", None) or repr(step)
            failures.append(f"{name}: {exc}")
            log.error("%s: undo step %s failed, not undone: %s", action, name, exc)
    return failures


def _run_locked(instance, store, handler, action, data, progress) -> Any:
    applier = Applier(instance)
    applier.recover(store)  # repair what a killed action may have left
    ctx = ActionContext(instance, store, progress, _applier=applier)
    change = None
    try:
        with store.transaction():  # rolled back on any exception, before the undo below
            before = store.conn.total_changes
            output = handler.run(ctx, data)
            progress(50)
            if store.conn.total_changes != before or ctx.force_apply or ctx.reload:
                change = applier.stage(store, always=tuple(sorted(ctx.reload)))
                if change.changed:
                    applier.check(change)
                    applier.swap(change)
                    pause_point("after-swap", instance.state_dir)
                    progress(75)
                    applier.reload(change)
            if os.environ.get("MAIL_VALIDATE_OUTPUT") == "1":
                errors = validation_errors(action, "output", output)
                if errors:
                    raise MailError(f"output of {action} does not match validate-output.json: {errors[0]['message']}")
    except BaseException:
        if change is not None:
            applier.undo(change)
        undo_steps(action, ctx.undo)
        raise
    if change is not None:
        applier.finish(change)
    progress(100)
    return output
