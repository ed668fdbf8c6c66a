"""Keep secrets out of what an action prints: the NS8 error list of a refused input.

A refused password must not come back in the error's `value` or `message` (a UI shows
them, the Redis agent stores them). Every field whose name says it holds a secret is
redacted, and the secret values of the input are scrubbed from every message, since
some schema errors quote the whole input object.
"""

from __future__ import annotations

import re
from typing import Any

# Field names that hold a secret: password, bind_password, relay_password, secret, token...
SECRET_FIELD = re.compile(r"(^|_)(password|passwd|secret|token|private_key)$", re.IGNORECASE)
REDACTED = "[redacted]"


def is_secret_field(name: str) -> bool:
    return bool(SECRET_FIELD.search(name))


def secret_values(data: Any) -> set[str]:
    """Every non-empty string held by a secret field anywhere in `data`."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str) and value and is_secret_field(str(key)):
                found.add(value)
            else:
                found |= secret_values(value)
    elif isinstance(data, list):
        for item in data:
            found |= secret_values(item)
    return found


def scrub(text: str, secrets: set[str]) -> str:
    """`text` with each secret (quoted, and bare when long enough to be unambiguous) replaced."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(repr(secret), REDACTED).replace(f'"{secret}"', REDACTED)
        if len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def redact_errors(errors: list[dict[str, Any]], data: Any = None) -> list[dict[str, Any]]:
    """The NS8 error list with secret fields' values and messages, and the input's secrets, removed."""
    secrets = secret_values(data)
    result = []
    for error in errors:
        error = dict(error)
        names = [str(error.get("parameter", "")), *str(error.get("field", "")).split(".")]
        if any(is_secret_field(n) for n in names if n):
            if error.get("value") is not None:
                error["value"] = REDACTED
            if "message" in error:
                error["message"] = f"the value of {error.get('field') or 'this field'} is not valid"
        for key in ("value", "message"):
            if isinstance(error.get(key), str):
                error[key] = scrub(error[key], secrets)
        result.append(error)
    return result
