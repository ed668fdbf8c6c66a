"""The Starlette application of `mailctl serve`: routes, the session guard, the UI files."""

from __future__ import annotations

import hmac
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings import Instance
from . import api
from .auth import LoginThrottle, Sessions
from .rspamd import RspamdProxy
from .tasks import Tasks

STATIC_DIR = Path(__file__).resolve().parent / "static"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Paths that answer without a session: the login call; the page and its assets are outside /api/.
PUBLIC_API = {"/api/login"}
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"SAMEORIGIN"),
]
API_HEADERS = [(b"cache-control", b"no-store")]
# The UI: its own scripts and styles only (no CDN, no inline script).
UI_POLICY = (b"content-security-policy",
             b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
             b"frame-ancestors 'self'; base-uri 'self'; form-action 'self'")


@dataclass
class WebState:
    """What every request handler shares: the instance, sessions, throttle, tasks, proxy."""

    instance: Instance
    sessions: Sessions = field(default_factory=Sessions)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    tasks: Tasks | None = None
    rspamd: RspamdProxy | None = None

    def __post_init__(self):
        self.tasks = self.tasks or Tasks(self.instance)
        self.rspamd = self.rspamd or RspamdProxy(self.instance)

    @property
    def cookie_name(self) -> str:
        # Cookies ignore ports: instances on one host need their own name.
        return f"mailctl-{self.instance.name}"


def _guarded(path: str) -> bool:
    return (path == "/api" or path.startswith("/api/") or path == "/rspamd" or path.startswith("/rspamd/")) \
        and path not in PUBLIC_API


def _same_origin(headers: Headers) -> bool:
    """A browser's request from our own pages (Origin or Referer names this host and port)."""
    origin = headers.get("origin") or headers.get("referer")
    if not origin:
        return headers.get("sec-fetch-site") == "same-origin"
    return urlsplit(origin).netloc == headers.get("host")


class Guard:
    """401 without a session on /api/ and /rspamd/; 403 for a state-changing request without
    the session's X-CSRF-Token (Rspamd's own pages cannot send it: there the request must
    come from our origin). Adds the security headers to every response."""

    def __init__(self, app: ASGIApp, web: WebState):
        self.app, self.web = app, web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if _guarded(path):
            refusal = self._check(scope)
            if refusal is not None:
                await refusal(scope, receive, self._with_headers(send, path))
                return
        await self.app(scope, receive, self._with_headers(send, path))

    def _check(self, scope: Scope) -> Response | None:
        request = Request(scope)
        session = self.web.sessions.get(request.cookies.get(self.web.cookie_name))
        if session is None:
            return api.error(401, "not logged in")
        if request.method not in SAFE_METHODS:
            if scope["path"].startswith("/rspamd"):
                if not _same_origin(request.headers):
                    return api.error(403, "cross-site request refused")
            elif not hmac.compare_digest(request.headers.get("x-csrf-token", ""), session.csrf_token):
                return api.error(403, "missing or wrong X-CSRF-Token header")
        scope.setdefault("state", {})["session"] = session
        return None

    @staticmethod
    def _with_headers(send: Send, path: str) -> Send:
        extra = list(SECURITY_HEADERS)
        if _guarded(path):
            extra += API_HEADERS
        if not path.startswith("/rspamd"):  # Rspamd's pages bring their own inline code
            extra.append(UI_POLICY)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in extra if h[0] not in present]
            await send(message)

        return send_with_headers


async def index(request: Request) -> Response:
    """The single page app: every path outside /api/, /static/ and /rspamd/ gets index.html."""
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        return api.error(404, "the UI files are not installed (module/mailctl/web/static/index.html)")
    return FileResponse(page, media_type="text/html")


async def _unexpected(request: Request, exc: Exception) -> Response:
    """A bug still answers in the API's shape: 500 with a one-line reason (logged whole)."""
    api.log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return api.error(500, f"{type(exc).__name__}: {exc}")


async def rspamd_root(request: Request) -> Response:
    return RedirectResponse("/rspamd/", status_code=307)


def create_app(instance: Instance, web: WebState | None = None) -> ASGIApp:
    """The whole application of one instance, wrapped in its Guard."""
    web = web or WebState(instance)

    @asynccontextmanager
    async def lifespan(app):
        yield
        await web.rspamd.close()

    proxy_methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    routes = [
        Route("/api/login", api.login, methods=["POST"]),
        Route("/api/session", api.session_info, methods=["GET"]),
        Route("/api/logout", api.logout, methods=["POST"]),
        Route("/api/actions", api.list_actions, methods=["GET"]),
        Route("/api/actions/{name}", api.run_action, methods=["POST"]),
        Route("/api/tasks/{name}", api.start_task, methods=["POST"]),
        Route("/api/tasks/{id}", api.get_task, methods=["GET"]),
        Route("/api/manifest", api.manifest, methods=["GET"]),
        Route("/api/status", api.status, methods=["GET"]),
        Route("/api/openapi.json", api.openapi_document, methods=["GET"]),
        Route("/api/{rest:path}", api.not_found, methods=proxy_methods),
        Route("/api", api.not_found, methods=proxy_methods),
        Route("/rspamd", rspamd_root, methods=proxy_methods),
        Route("/rspamd/{path:path}", web.rspamd.handle, methods=proxy_methods),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
        Route("/{rest:path}", index, methods=["GET", "HEAD"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={Exception: _unexpected})
    app.state.web = web
    return Guard(app, web)

