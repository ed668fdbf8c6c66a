"""The /api/ endpoints: login, actions, tasks, manifest, status and the OpenAPI document.

Every endpoint but /api/login is reached only through app.Guard, which has already
checked the session (and the CSRF token of a state-changing request).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.responses import Response

from .. import lifecycle, runner, schemas
from ..errors import MailError, ValidationFailed
from ..settings import PROJECT_ROOT
from . import openapi
from .auth import check_credentials

log = logging.getLogger("mailctl.web")

MAX_BODY = 16 * 1024 * 1024  # bytes of JSON input an action accepts over HTTP


class JSONResponse(_StarletteJSON):
    """JSON written by orjson: list-addresses with 10,000 addresses is 2 MiB, which the
    standard json module takes ~25 ms to write and orjson ~3 ms (bench/api_list_addresses.py)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, reason: str, **headers: str) -> JSONResponse:
    """A failure with a one-line reason: {"error": "..."}."""
    line = " ".join(str(reason).split()) or "failed"
    return JSONResponse({"error": line[:500]}, status_code=status, headers=headers or None)


def invalid(field: str, error_code: str, message: str, value: Any = None) -> JSONResponse:
    """422 with one NS8 error, the shape of exit 10."""
    return JSONResponse([{"field": field, "parameter": field, "value": value, "error": error_code,
                          "message": message}], status_code=422)


class BadBody(Exception):
    def __init__(self, response: Response):
        self.response = response


async def json_body(request: Request) -> Any:
    """The request's JSON (None when empty); BadBody(422/413) when it is not usable JSON."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise BadBody(error(413, f"input larger than {MAX_BODY} bytes"))
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadBody(invalid("", "invalid_json", f"input is not JSON: {exc}"))


def _web(request: Request):
    return request.app.state.web


def _client_address(request: Request) -> str:
    # The peer address itself: forwarded-for headers are the client's to forge.
    return request.client.host if request.client else ""


# --- session ---------------------------------------------------------------------------

async def login(request: Request) -> Response:
    web = _web(request)
    address = _client_address(request)
    wait = web.throttle.retry_after(address)
    if wait:
        return error(429, "too many failed logins from this address: try again later", **{"Retry-After": str(wait)})
    try:
        body = await json_body(request)
    except BadBody as bad:
        return bad.response
    if not isinstance(body, dict):
        return invalid("", "input_type", "send {\"username\": ..., \"password\": ...}")
    for name, limit in (("username", 256), ("password", 1024)):
        value = body.get(name)
        if not isinstance(value, str) or not value or len(value) > limit:
            return invalid(name, f"{name}_invalid", f"{name}: a non-empty string of at most {limit} characters")
    account = await run_in_threadpool(check_credentials, web.instance, body["username"], body["password"])
    if account is None:
        delay = web.throttle.failed(address)
        log.warning("failed login for %r from %s", body["username"][:64], address)
        await asyncio.sleep(delay)  # slow down a guesser, without holding a worker thread
        return error(401, "wrong username or password")
    web.throttle.succeeded(address)
    session_id, session = web.sessions.create(account)
    log.info("login of %s from %s", account, address)
    response = JSONResponse({"csrf_token": session.csrf_token})
    response.set_cookie(web.cookie_name, session_id, httponly=True, secure=True, samesite="strict", path="/")
    return response


async def session_info(request: Request) -> Response:
    session = request.state.session
    return JSONResponse({"username": session.username, "csrf_token": session.csrf_token})


async def logout(request: Request) -> Response:
    web = _web(request)
    web.sessions.drop(request.cookies.get(web.cookie_name))
    response = JSONResponse(None)
    response.delete_cookie(web.cookie_name, path="/", httponly=True, secure=True, samesite="strict")
    return response


# --- actions -------------------------------------------------------------------------------

async def list_actions(request: Request) -> Response:
    return JSONResponse(action_catalogue())


def action_catalogue() -> list[dict[str, Any]]:
    """Every action with its description and its schemas, references inlined."""
    return [{"name": name, "description": schemas.describe(name),
             "input_schema": schemas.resolved_schema(name, "input"),
             "output_schema": schemas.resolved_schema(name, "output")}
            for name in schemas.action_names()]


async def action_request(request: Request) -> tuple[str, Any] | Response:
    """The action named in the path and its JSON input, or the 404/400 answer to give."""
    name = request.path_params["name"]
    if name not in schemas.action_names():
        return error(404, f"unknown action {name!r}")
    try:
        return name, await json_body(request)
    except BadBody as bad:
        return bad.response


async def run_action(request: Request) -> Response:
    parsed = await action_request(request)
    if isinstance(parsed, Response):
        return parsed
    name, data = parsed
    try:
        # The CLI's own runner, in a worker thread: the same validation, lock and transaction.
        output = await run_in_threadpool(runner.run_action, _web(request).instance, name, data)
    except ValidationFailed as exc:
        return JSONResponse(exc.errors, status_code=422)
    except MailError as exc:
        return error(500, str(exc))
    except Exception as exc:  # noqa: BLE001 - an unexpected failure is still a one-line 500
        log.exception("action %s failed", name)
        return error(500, f"{name} failed: {type(exc).__name__}: {exc}")
    return JSONResponse(output)


# --- tasks ---------------------------------------------------------------------------------

async def start_task(request: Request) -> Response:
    parsed = await action_request(request)
    if isinstance(parsed, Response):
        return parsed
    name, data = parsed
    # Refuse bad input now, as the synchronous route does, rather than in the task.
    errors = schemas.validation_errors(name, "input", runner.normalize_input(data))
    if errors:
        return JSONResponse(errors, status_code=422)
    task_id = _web(request).tasks.start(name, data)
    return JSONResponse({"id": task_id}, status_code=202)


async def get_task(request: Request) -> Response:
    record = _web(request).tasks.get(request.path_params["id"])
    if record is None:
        return error(404, "no such task")
    return JSONResponse(record)


# --- the rest ------------------------------------------------------------------------------

async def manifest(request: Request) -> Response:
    return JSONResponse(json.loads((PROJECT_ROOT / "ui-manifest.json").read_text()))


async def status(request: Request) -> Response:
    try:
        rows = await run_in_threadpool(lifecycle.status, _web(request).instance)
    except MailError as exc:
        return error(500, str(exc))
    return JSONResponse([row.as_dict() for row in rows])


async def openapi_document(request: Request) -> Response:
    return JSONResponse(openapi.document(_web(request).cookie_name))


async def not_found(request: Request) -> Response:
    return error(404, f"no API route {request.url.path}")
