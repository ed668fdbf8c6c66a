"""External LDAP user domains: check a server before accepting it, store it, and keep
the bind password of the selected user domain where the daemons read it.

Bind passwords live only in secret files (mode 0600): one per external domain
(`ldap-bind-password-<name>`) and the generic `ldap-bind-password`, mounted into
postfix and dovecot, which always holds the selected domain's password (empty for
`local`). The images' reload scripts put it in place of `__SECRET_ldap-bind-password__`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ldap3 import BASE, NONE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException

from .context import EMBEDDED_LDAP, SYSTEM_CA_FILE, user_domain_config
from .secrets import write_secret
from .state import Store
from .userdomains import bind_secret_name

if TYPE_CHECKING:
    from .runner import ActionContext

BIND_SECRET = "ldap-bind-password"  # mounted at /run/secrets/ldap-bind-password
LDAP_DAEMONS = ("postfix", "dovecot")  # the daemons that read the user domain
INVALID_CREDENTIALS = 49
INVALID_DN_SYNTAX = 34
NO_SUCH_OBJECT = 32


@dataclass(frozen=True)
class ProbeError:
    """Why a server was not accepted, for ctx.reject (the field the user must fix)."""

    field: str
    error: str
    message: str


def probe(url: str, base_dn: str, bind_dn: str = "", password: str = "", tls: bool = False,
          timeout: float = 5, verify: bool = False) -> ProbeError | None:
    """Connect to `url`, start TLS if asked, bind (as `bind_dn`, or anonymously), read `base_dn`.

    With `verify`, the server's certificate must chain to a system CA and name its host.
    """
    checks = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=SYSTEM_CA_FILE) if verify else Tls(validate=ssl.CERT_NONE)
    try:
        server = Server(url, connect_timeout=timeout, use_ssl=url.startswith("ldaps://"), tls=checks, get_info=NONE)
        conn = Connection(server, user=bind_dn or None, password=password or None, receive_timeout=timeout,
                          raise_exceptions=False)
    except LDAPException as exc:  # a URL the schema's pattern lets through but ldap3 cannot parse
        return ProbeError("url", "ldap_url_invalid", f"{url} is not a usable LDAP URL: {exc}")
    try:
        try:
            conn.open()
        except LDAPException as exc:
            return (_untrusted(url, exc, verify)
                    or ProbeError("url", "ldap_server_unreachable", f"no LDAP server answers at {url}: {exc}"))
        if tls and url.startswith("ldap://"):
            try:
                if not conn.start_tls():
                    return ProbeError("tls", "ldap_starttls_failed", f"STARTTLS refused: {conn.result['description']}")
            except LDAPException as exc:
                return _untrusted(url, exc, verify) or ProbeError("tls", "ldap_starttls_failed",
                                                                  f"STARTTLS failed: {exc}")
        try:
            bound = conn.bind()
        except LDAPException as exc:
            return ProbeError("url", "ldap_server_unreachable", f"bind to {url} failed: {exc}")
        if not bound:
            code, text = conn.result.get("result"), conn.result.get("description", "")
            if not bind_dn:
                return ProbeError("bind_dn", "ldap_bind_required", f"anonymous bind refused ({text})")
            if code == INVALID_CREDENTIALS:
                return ProbeError("bind_password", "ldap_bind_failed", "the server refused this DN and password")
            return ProbeError("bind_dn", "ldap_bind_failed", f"bind as {bind_dn} refused ({text})")
        try:
            conn.search(base_dn, "(objectClass=*)", BASE)
        except LDAPException as exc:
            return ProbeError("url", "ldap_server_unreachable", f"search on {url} failed: {exc}")
        if conn.result.get("result") in (NO_SUCH_OBJECT, INVALID_DN_SYNTAX) or not conn.entries:
            return ProbeError("base_dn", "ldap_base_dn_not_found", f"{base_dn} is not readable on {url}")
        return None
    finally:
        try:
            conn.unbind()
        except LDAPException:
            pass


def _untrusted(url: str, exc: Exception, verify: bool) -> ProbeError | None:
    """The tls_verify rejection, when checking was asked for and the TLS failure is the certificate's."""
    text = str(exc).lower()
    if verify and ("certificate" in text or "hostname" in text or "host name" in text):
        return ProbeError("tls_verify", "ldap_certificate_invalid", f"the certificate of {url} is not trusted: {exc}")
    return None


def find_external(store: Store, name: str) -> dict[str, Any] | None:
    return next((d for d in store.get("external_user_domains") or [] if d["name"] == name), None)


def save_external(store: Store, entry: dict[str, Any]) -> None:
    """Add or replace the external user domain `entry["name"]` (no password in it)."""
    domains = [d for d in store.get("external_user_domains") or [] if d["name"] != entry["name"]]
    store.set("external_user_domains", sorted([*domains, entry], key=lambda d: d["name"]))


def _write_with_undo(ctx: ActionContext, name: str, content: str, reload_after_undo: bool = False) -> bool:
    """Write secret `name`; on failure of the action put the old content back. True if it changed."""
    path = ctx.instance.secrets_dir / name
    old = path.read_text() if path.exists() else None
    if old == content:
        return False
    write_secret(path, content)

    def undo() -> None:
        if old is None:
            path.unlink(missing_ok=True)
        else:
            write_secret(path, old)
        if reload_after_undo:  # the runner reloaded them before this step: again with the old secret
            ctx.applier.reload_after_undo(LDAP_DAEMONS)

    ctx.undo.append(undo)
    return True


def store_password(ctx: ActionContext, domain: str, password: str) -> None:
    """Keep an external domain's bind password in its own secret file."""
    _write_with_undo(ctx, bind_secret_name(domain), password)


def stored_password(ctx: ActionContext, domain: str) -> str:
    path = ctx.instance.secrets_dir / bind_secret_name(domain)
    return path.read_text() if path.exists() else ""


def sync_bind_secret(ctx: ActionContext) -> None:
    """Make the mounted `ldap-bind-password` hold the selected user domain's password.

    Call it after any change of the selected domain or of its password: when the
    content changes, postfix and dovecot reload so that their LDAP files get it.
    """
    conf = user_domain_config(ctx.store)
    password = "" if conf["embedded"] or not conf["bind_dn"] else stored_password(ctx, conf["name"])
    if _write_with_undo(ctx, BIND_SECRET, password, reload_after_undo=True):
        ctx.reload |= set(LDAP_DAEMONS)


def is_embedded(name: str) -> bool:
    return name == EMBEDDED_LDAP["name"]
