"""Exceptions that the CLI turns into exit codes and messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Exit codes of `mailctl` (see ARCHITECTURE.md).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_PORT_CONFLICT = 3
EXIT_NOT_IMPLEMENTED = 4
EXIT_VALIDATION = 10


class MailError(Exception):
    """A failure with a one-line reason meant for the user."""

    exit_code = EXIT_FAILURE


class PortConflict(MailError):
    """A port the instance needs is held by someone else."""

    exit_code = EXIT_PORT_CONFLICT


class NotImplementedAction(MailError):
    """The action exists in the catalogue but its feature is not built yet."""

    exit_code = EXIT_NOT_IMPLEMENTED


class ValidationFailed(MailError):
    """Input rejected; `errors` is the NS8 list of {field, parameter, value, error}."""

    exit_code = EXIT_VALIDATION

    def __init__(self, errors: list[dict]):
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['error']}" for e in errors))


# The type of ActionContext.reject, which the rules of the feature modules take:
# (field, error code, value, message) -> raises ValidationFailed.
Reject = Callable[..., Any]
