"""uvicorn over HTTPS with the instance's certificate, for `mailctl serve`.

The certificate is the one postfix and dovecot use (`<state>/tls`, replaced by the
`certificate-changed` action); a new one is loaded into the running TLS context within
seconds, so new connections get it without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

import uvicorn

from ..context import default_hostname
from ..runner import instance_lock
from ..secrets import ensure_secrets
from ..settings import Instance
from ..stack import WEB_PORT
from ..state import Store
from ..tls import ensure_self_signed
from .app import create_app

CERT_CHECK_SECONDS = 5

log = logging.getLogger("mailctl.web")


def default_port(instance: Instance) -> int:
    return instance.host_port(WEB_PORT)


def prepare(instance: Instance) -> None:
    """Secrets (the admin password among them) and a certificate, as `mailctl up` makes them."""
    with instance_lock(instance):
        ensure_secrets(instance)
        if not (instance.tls_dir / "cert.pem").exists():
            store = Store(instance.db_path)
            try:
                hostname = store.get("hostname") or default_hostname()
            finally:
                store.close()
            ensure_self_signed(instance.tls_dir, hostname)


async def _reload_certificate(context: ssl.SSLContext, instance: Instance) -> None:
    """Load the certificate again into the live context whenever its files change."""
    cert, key = instance.tls_dir / "cert.pem", instance.tls_dir / "key.pem"

    def stamp():
        return tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in (cert, key))

    seen = stamp()
    while True:
        await asyncio.sleep(CERT_CHECK_SECONDS)
        now = stamp()
        if now != seen:
            try:
                context.load_cert_chain(str(cert), str(key))
                seen = now
                log.info("loaded the new TLS certificate")
            except (OSError, ssl.SSLError) as exc:  # half-written pair: try again next round
                log.warning("new TLS certificate not loaded yet: %s", exc)


def serve(instance: Instance, host: str, port: int) -> None:
    """Serve the UI and API until interrupted."""
    prepare(instance)
    config = uvicorn.Config(create_app(instance), host=host, port=port,
                            ssl_certfile=str(instance.tls_dir / "cert.pem"),
                            ssl_keyfile=str(instance.tls_dir / "key.pem"),
                            ssl_version=ssl.PROTOCOL_TLS_SERVER, proxy_headers=False,
                            server_header=False, log_level="info", timeout_graceful_shutdown=5)
    config.load()
    config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    server = uvicorn.Server(config)

    async def main() -> None:
        watcher = asyncio.create_task(_reload_certificate(config.ssl, instance))
        try:
            await server.serve()
        finally:
            watcher.cancel()

    asyncio.run(main())
