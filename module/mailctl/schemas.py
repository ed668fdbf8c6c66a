"""The JSON Schemas of the actions: `actions/<name>/validate-{input,output}.json`, and the
translation of their validation errors into the NS8 error list.

Schema files carry no `$id`: each one's base URI is its own file:// path, so
`{"$ref": "../definitions.json#/definitions/domain"}` resolves against the
actions folder. Only file:// URIs under `ACTIONS_DIR` are ever loaded.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT7

from .redact import redact_errors
from .settings import PROJECT_ROOT

ACTIONS_DIR: Path = PROJECT_ROOT / "actions"

Kind = Literal["input", "output"]

_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_LOCAL = re.compile(r"^[^\s@\"\\<>()\[\],;:]{1,64}$")


def _is_hostname(value: object) -> bool:
    """RFC 1123 host name (jsonschema checks "hostname" only if the `fqdn` package is installed)."""
    if not isinstance(value, str):
        return True
    return 0 < len(value) <= 253 and all(_LABEL.match(label) for label in value.split("."))


def _is_email(value: object) -> bool:
    """local@host with a plausible local part and an RFC 1123 host (jsonschema only looks for an "@")."""
    if not isinstance(value, str):
        return True
    local, at, host = value.rpartition("@")
    return bool(at) and bool(_LOCAL.match(local)) and _is_hostname(host)


def format_checker() -> FormatChecker:
    """The standard checker (ipv4, ipv6, ...) with real "hostname" and "email" checks."""
    checker = FormatChecker()
    checker.checks("hostname")(_is_hostname)
    checker.checks("email")(_is_email)
    return checker


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


@cache
def _retrieve(uri: str) -> Resource:
    """Load a schema referenced by a file:// URI inside the actions folder."""
    parts = urlsplit(uri)
    path = Path(unquote(parts.path)).resolve()
    if parts.scheme != "file" or not path.is_relative_to(ACTIONS_DIR.resolve()) or not path.is_file():
        raise NoSuchResource(ref=uri)
    return Resource.from_contents(_read(path), default_specification=DRAFT7)


@cache
def _registry() -> Registry:
    return Registry(retrieve=_retrieve)


def action_names() -> list[str]:
    """Every action, i.e. every folder of ACTIONS_DIR with a validate-input.json, sorted."""
    if not ACTIONS_DIR.is_dir():
        return []
    return sorted(p.parent.name for p in ACTIONS_DIR.glob("*/validate-input.json"))


def schema_path(action: str, kind: Kind) -> Path:
    """The file of an action's input or output schema."""
    if kind not in ("input", "output"):
        raise ValueError(f"schema kind {kind!r}: use 'input' or 'output'")
    return ACTIONS_DIR / action / f"validate-{kind}.json"


def load_schema(action: str, kind: Kind) -> dict[str, Any]:
    """The schema as stored, with `$id` set to its file:// URI (its base for relative $ref)."""
    path = schema_path(action, kind)
    return {**_read(path), "$id": path.resolve().as_uri()}


@cache
def load_validator(action: str, kind: Kind) -> Draft7Validator:
    """A format-checking Draft 7 validator for an action's input or output, with $refs resolvable."""
    return Draft7Validator(load_schema(action, kind), registry=_registry(), format_checker=format_checker())


def describe(action: str) -> str:
    """The one-line description of an action (from its validate-input.json)."""
    return str(_read(schema_path(action, "input")).get("description", "")).strip()


# Keys that only make sense at the top of a schema file, dropped where a file is inlined.
_FILE_KEYS = ("$schema", "$id")


@cache
def resolved_schema(action: str, kind: Kind) -> dict[str, Any]:
    """The action's schema with every `$ref` replaced by what it points at.

    For clients that cannot follow file references (a browser, an OpenAPI document).
    Draft 7 ignores the siblings of a `$ref`, so the reference replaces its whole object.
    """
    path = schema_path(action, kind)
    resolver = _registry().resolver(base_uri=path.resolve().as_uri())
    schema = _inline(_read(path), resolver, depth=0)
    return {k: v for k, v in schema.items() if k not in _FILE_KEYS}


_MAX_REF_DEPTH = 32  # the action schemas have no recursive definitions; stop a cycle anyway


def _inline(node: Any, resolver: Any, depth: int) -> Any:
    if isinstance(node, list):
        return [_inline(item, resolver, depth) for item in node]
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("$ref"), str):
        if depth >= _MAX_REF_DEPTH:
            raise ValueError(f"$ref nested more than {_MAX_REF_DEPTH} deep: {node['$ref']}")
        resolved = resolver.lookup(node["$ref"])
        target = _inline(resolved.contents, resolved.resolver, depth + 1)
        return {k: v for k, v in target.items() if k not in _FILE_KEYS} if isinstance(target, dict) else target
    return {key: _inline(value, resolver, depth) for key, value in node.items()}


def validation_errors(action: str, kind: str, data: Any) -> list[dict[str, Any]]:
    """The NS8 error list for `data` against the action's input or output schema, secrets redacted."""
    validator = load_validator(action, kind)
    errors = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = [str(p) for p in err.absolute_path]
        value = err.instance
        if err.validator == "required":
            missing = err.message.split("'")[1]
            path.append(missing)
            value = None
        elif err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            path.append(extra[0] if extra else "")
            value = err.instance.get(path[-1]) if extra else None
        elif err.validator == "not" and isinstance(err.instance, dict) and _forbidden(err.validator_value):
            # {"not": {"required": [X]}} (or an anyOf of those): X is forbidden here,
            # e.g. the domain of a wildcard address: name X as the field.
            names = _forbidden(err.validator_value)
            path.append(next((k for k in names if k in err.instance), names[0]))
            value = err.instance.get(path[-1])
        field_name = ".".join(path)
        errors.append({
            "field": field_name,
            "parameter": path[-1] if path else "",
            "value": value if isinstance(value, (str, int, float, bool, type(None))) else None,
            "error": f"{field_name or 'input'}_{err.validator}".replace(".", "_"),
            "message": err.message[:300],
        })
    return redact_errors(errors, data)  # no password back in the list (every caller shows it)


def _forbidden(schema: Any) -> list[str]:
    """Property names a `not` schema built from `required` (or anyOf of them) forbids."""
    if not isinstance(schema, dict):
        return []
    names = list(schema.get("required", []))
    for sub in schema.get("anyOf", []):
        names += _forbidden(sub)
    return names
