"""/rspamd/: Rspamd's web UI through this server, behind its login.

The controller (port 11334 in the rspamd container) is not published on the host; the
proxy reaches it at the container's address on its service network and adds Rspamd's
password itself, so the browser never learns it. Our session cookie and CSRF header are
not passed on.
"""

from __future__ import annotations

import time

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..engines import get_engine
from ..errors import MailError
from ..secrets import read_secret
from ..settings import Instance
from ..stack import home_network
from .api import error

CONTROLLER_PORT = 11334
MAX_BODY = 32 * 1024 * 1024  # a message uploaded to be scanned or learned
# Headers that belong to one connection, or to us, never forwarded either way.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
               "transfer-encoding", "upgrade", "host", "content-length"}
_NOT_FORWARDED = _HOP_BY_HOP | {"cookie", "x-csrf-token", "password", "authorization", "accept-encoding"}
_NOT_RETURNED = _HOP_BY_HOP | {"set-cookie", "content-encoding"}


class RspamdProxy:
    def __init__(self, instance: Instance, address_ttl: float = 60):
        self.instance = instance
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(60, connect=5))
        self.address_ttl = address_ttl
        self._address: tuple[str, float] | None = None

    async def _controller(self) -> str:
        """The rspamd container's address, looked up again after a minute or a failure."""
        if self._address and time.monotonic() - self._address[1] < self.address_ttl:
            return self._address[0]
        engine = get_engine(self.instance.engine)
        ip = await run_in_threadpool(engine.container_ip, self.instance.container_name("rspamd"),
                                     home_network(self.instance.name, "rspamd"))
        self._address = (ip, time.monotonic())
        return ip

    async def handle(self, request: Request) -> Response:
        """Forward one request to the controller and its answer back."""
        body = await request.body()
        if len(body) > MAX_BODY:
            return error(413, f"request larger than {MAX_BODY} bytes")
        try:
            ip = await self._controller()
        except MailError as exc:
            return error(502, f"Rspamd is not running: {exc}")
        url = f"http://{ip}:{CONTROLLER_PORT}/{request.path_params.get('path', '')}"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        headers["Password"] = read_secret(self.instance, "rspamd-admin-password").strip()
        try:
            upstream = await self.client.request(request.method, url, params=request.query_params.multi_items(),
                                                 headers=headers, content=body)
        except httpx.HTTPError as exc:
            self._address = None  # the container may have a new address
            return error(502, f"Rspamd did not answer: {type(exc).__name__}")
        returned = {k: v for k, v in upstream.headers.items() if k.lower() not in _NOT_RETURNED}
        return Response(upstream.content, status_code=upstream.status_code, headers=returned)

    async def close(self) -> None:
        await self.client.aclose()
