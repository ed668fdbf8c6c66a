"""The OpenAPI 3.1 document of the HTTP API, generated from the action schemas.

One operation per action (`POST /api/actions/<name>`), its request body the action's
input schema and its 200 response the output schema, both with references inlined.
OpenAPI 3.1 speaks JSON Schema 2020-12: the one Draft 7 keyword the actions use that
2020-12 renamed (`dependencies`) is translated.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from .. import __version__, schemas

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
FIELD_ERRORS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["field", "parameter", "value", "error"],
        "properties": {"field": {"type": "string"}, "parameter": {"type": "string"}, "value": {},
                       "error": {"type": "string"}, "message": {"type": "string"}},
    },
}
TASK = {
    "type": "object",
    "required": ["id", "action", "status", "progress", "output", "error", "exit_code"],
    "properties": {
        "id": {"type": "string"}, "action": {"type": "string"},
        "status": {"enum": ["running", "done", "failed"]},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "output": {}, "error": {"type": "string"}, "exit_code": {"type": ["integer", "null"]},
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


UNAUTHORIZED = _json(ERROR, "no session: log in first")
FORBIDDEN = _json(ERROR, "missing or wrong X-CSRF-Token header")
INVALID = _json(FIELD_ERRORS, "invalid input: the NS8 error list (exit code 10)")
FAILED = _json(ERROR, "the action failed; nothing changed")
NOT_FOUND = _json(ERROR, "unknown")


def to_2020_12(node: Any) -> Any:
    """A Draft 7 schema in JSON Schema 2020-12 terms (`dependencies` split in two)."""
    if isinstance(node, list):
        return [to_2020_12(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: to_2020_12(value) for key, value in node.items() if key != "dependencies"}
    for prop, dep in (node.get("dependencies") or {}).items():
        target = "dependentRequired" if isinstance(dep, list) else "dependentSchemas"
        out.setdefault(target, {})[prop] = to_2020_12(dep)
    return out


def _action_operation(name: str) -> dict[str, Any]:
    return {
        "operationId": f"action-{name}",
        "summary": schemas.describe(name),
        "tags": ["actions"],
        "requestBody": {"required": False, "content": {"application/json": {
            "schema": to_2020_12(schemas.resolved_schema(name, "input"))}}},
        "responses": {
            "200": _json(to_2020_12(schemas.resolved_schema(name, "output")), "the action's output"),
            "401": UNAUTHORIZED, "403": FORBIDDEN, "413": _json(ERROR, "input too large"),
            "422": INVALID, "500": FAILED,
        },
    }


@cache
def document(cookie_name: str) -> dict[str, Any]:
    """The whole document; `cookie_name` is the session cookie (one per instance)."""
    names = schemas.action_names()
    session_only = {"401": UNAUTHORIZED}
    paths: dict[str, Any] = {
        "/api/login": {"post": {
            "operationId": "login", "security": [], "tags": ["session"],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["username", "password"],
                "properties": {"username": {"type": "string"}, "password": {"type": "string"}}}}}},
            "responses": {
                "200": _json({"type": "object", "required": ["csrf_token"],
                              "properties": {"csrf_token": {"type": "string"}}}, "logged in: session cookie set"),
                "401": _json(ERROR, "wrong username or password"),
                "422": INVALID,
                "429": _json(ERROR, "too many failed logins from this address"),
            },
        }},
        "/api/session": {"get": {
            "operationId": "session", "tags": ["session"],
            "responses": {"200": _json({"type": "object", "required": ["username", "csrf_token"],
                                        "properties": {"username": {"type": "string"},
                                                       "csrf_token": {"type": "string"}}}, "the session"),
                          **session_only}}},
        "/api/logout": {"post": {
            "operationId": "logout", "tags": ["session"],
            "responses": {"200": _json({"type": "null"}, "logged out"), **session_only, "403": FORBIDDEN}}},
        "/api/manifest": {"get": {
            "operationId": "manifest", "tags": ["ui"],
            "responses": {"200": _json({"type": "object"}, "ui-manifest.json"), **session_only}}},
        "/api/status": {"get": {
            "operationId": "status", "tags": ["ui"],
            "responses": {"200": _json({"type": "array", "items": {
                "type": "object", "required": ["name", "daemon", "state", "health"],
                "properties": {**{k: {"type": "string"} for k in ("name", "daemon", "state", "health")},
                               "restarts": {"type": "integer"},
                               # state crash-loop: when `mailctl watch` starts it again (epoch s)
                               "next_start": {"type": "integer"}}}},
                "each container with its state, health and restarts"), **session_only, "500": FAILED}}},
        "/api/openapi.json": {"get": {
            "operationId": "openapi", "tags": ["ui"],
            "responses": {"200": _json({"type": "object"}, "this document"), **session_only}}},
        "/api/actions": {"get": {
            "operationId": "actions", "tags": ["actions"],
            "responses": {"200": _json({"type": "array", "items": {
                "type": "object", "required": ["name", "description", "input_schema", "output_schema"]}},
                "every action with its schemas"), **session_only}}},
        "/api/tasks/{name}": {"post": {
            "operationId": "start-task", "tags": ["tasks"],
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"enum": names}}],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {}}}},
            "responses": {"202": _json({"type": "object", "required": ["id"],
                                        "properties": {"id": {"type": "string"}}}, "the task is running"),
                          **session_only, "403": FORBIDDEN, "404": NOT_FOUND, "413": _json(ERROR, "input too large"),
                          "422": INVALID}}},
        "/api/tasks/{id}": {"get": {
            "operationId": "get-task", "tags": ["tasks"],
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json(TASK, "the task's record"), **session_only, "404": NOT_FOUND}}},
    }
    for name in names:
        paths[f"/api/actions/{name}"] = {"post": _action_operation(name)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "mailctl", "version": __version__,
                 "description": "The mail module's actions over HTTPS. Log in with POST /api/login; send the "
                                "csrf_token it returns in the X-CSRF-Token header of every POST."},
        "security": [{"session": []}],
        "components": {"securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": cookie_name}}},
        "paths": paths,
    }
