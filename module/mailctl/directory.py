"""Users and groups of a user domain, read (and for the embedded domain, written) with ldap3.

The embedded OpenLDAP container publishes no port: the runtime reaches it at its
address on its service network (the host reaches it there), binding as its admin with the secret password.
"""

from __future__ import annotations

from typing import Any

from ldap3 import AUTO_BIND_TLS_BEFORE_BIND, BASE, MODIFY_DELETE, MODIFY_REPLACE, NONE, SUBTREE, Connection, Server
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from .context import EMBEDDED_LDAP, LDAP_SCHEMAS, user_domain_config
from .engines import get_engine
from .errors import MailError
from .secrets import read_secret, sha512_crypt_hash
from .settings import Instance
from .stack import home_network
from .state import Store

FIRST_ID = 10000  # uidNumber/gidNumber of the first user and group
# Entries per page of a listing: Active Directory answers at most 1000 per search
# (MaxPageSize); slapd's admin has no limit. One listing is one paged search.
PAGE_SIZE = 1000

# An entry as the searches return it: {"dn": str, attribute (lower case): [str values]}.
Entry = dict[str, Any]


class DirectoryError(MailError):
    """The user domain's LDAP server failed or refused a request."""


class Directory:
    """Read access to a user domain: users, groups and their members."""

    def __init__(self, conf: dict[str, Any], url: str, bind_dn: str = "", password: str = ""):
        self.conf = conf
        self.url = url
        self.base = conf["base_dn"]
        self.schema = LDAP_SCHEMAS[conf["schema"]]
        try:
            # get_info=NONE: no schema read at bind (a round trip and ~0.2 s of parsing), and
            # check_names=False: no per-value formatting; values are decoded here as UTF-8
            # text (_entry), which is what every attribute read is.
            server = Server(url, connect_timeout=5, use_ssl=url.startswith("ldaps://"), get_info=NONE)
            starttls = bool(conf.get("tls")) and url.startswith("ldap://")
            self.conn = Connection(server, bind_dn or None, password or None,
                                   auto_bind=AUTO_BIND_TLS_BEFORE_BIND if starttls else True,
                                   receive_timeout=10, raise_exceptions=True, check_names=False)
        except LDAPException as exc:
            raise DirectoryError(f"user domain {conf['name']}: cannot reach {url}: {exc}") from exc

    def close(self) -> None:
        self.conn.unbind()

    def _search(self, flt: str, attrs: list[str], base: str | None = None, scope: str = SUBTREE) -> list[Entry]:
        """The entries matching `flt`, with the raw values of `attrs`: one paged search.

        ldap3's Entry objects cost ~0.4 ms each (10,000 users: 4 s); the raw response is
        read instead."""
        try:
            responses = self.conn.extend.standard.paged_search(
                base or self.base, flt, scope, attributes=attrs, paged_size=PAGE_SIZE, generator=False)
        except LDAPException as exc:
            raise DirectoryError(f"user domain {self.conf['name']}: search failed: {exc}") from exc
        return [_entry(r) for r in responses if r.get("type") == "searchResEntry"]

    def _only(self, flt: str, attr: str, name: str | None) -> str:
        """The filter `flt`, narrowed to the entry named `name` (by `attr`) when given."""
        return f"(&{flt}({attr}={escape(name)}))" if name is not None else flt

    def users(self, only: str | None = None) -> list[dict[str, Any]]:
        """Every user, or (`only`) the user of that name: one search either way."""
        s = self.schema
        entries = self._search(self._only(s["user_filter"], s["user_attr"], only),
                               [s["user_attr"], s["display_attr"], s["mail_attr"]])
        users = []
        for e in entries:
            name = _first(e, s["user_attr"])
            if name:
                users.append({"user": name.lower(), "display_name": _first(e, s["display_attr"]) or "",
                              "mail": _first(e, s["mail_attr"]) or "", "dn": e["dn"]})
        return sorted(users, key=lambda u: u["user"])

    def groups(self, only: str | None = None) -> list[dict[str, Any]]:
        """Every group, or (`only`) the group of that name, with its members."""
        s = self.schema
        entries = self._search(self._only(s["group_filter"], s["group_attr"], only),
                               [s["group_attr"], "description", s["member_attr"]])
        by_dn = {u["dn"].lower(): u["user"] for u in self.users()} if s["member_is_dn"] else {}
        groups = []
        for e in entries:
            name = _first(e, s["group_attr"])
            if not name:
                continue
            raw = e.get(s["member_attr"].lower(), [])
            members = [by_dn.get(str(m).lower()) for m in raw] if s["member_is_dn"] else [str(m).lower() for m in raw]
            groups.append({"group": name.lower(), "description": _first(e, "description") or "",
                           "members": sorted(m for m in members if m)})
        return sorted(groups, key=lambda g: g["group"])

    # One search for the named entry, not a listing of the whole domain (10,000 users).
    def user(self, name: str) -> dict[str, Any] | None:
        return next((u for u in self.users(only=name) if u["user"] == name.lower()), None)

    def group(self, name: str) -> dict[str, Any] | None:
        return next((g for g in self.groups(only=name) if g["group"] == name.lower()), None)


class EmbeddedDirectory(Directory):
    """The embedded domain `local`: users under ou=People, groups under ou=Groups."""

    @property
    def people(self) -> str:
        return f"ou=People,{self.base}"

    @property
    def groups_dn(self) -> str:
        return f"ou=Groups,{self.base}"

    def _do(self, what: str, call) -> None:
        try:
            call()
        except LDAPException as exc:
            raise DirectoryError(f"{what}: {exc}") from exc

    def _next_id(self, attr: str) -> int:
        entries = self._search(f"({attr}=*)", [attr])
        return max([FIRST_ID - 1, *(int(v) for e in entries for v in e.get(attr.lower(), [])[:1])]) + 1

    def add_user(self, user: str, password: str, display_name: str = "", mail: str = "") -> None:
        attrs = {
            "objectClass": ["inetOrgPerson", "posixAccount", "shadowAccount"],
            "uid": user, "cn": display_name or user, "sn": display_name or user,
            "uidNumber": self._next_id("uidNumber"), "gidNumber": FIRST_ID,
            "homeDirectory": f"/var/lib/vmail/{user}", "loginShell": "/usr/sbin/nologin",
            "userPassword": hashed_password(password),
        }
        if display_name:
            attrs["displayName"] = display_name
        if mail:
            attrs["mail"] = mail
        self._do(f"add user {user}", lambda: self.conn.add(f"uid={user},{self.people}", attributes=attrs))

    def modify_user(self, user: str, display_name: str | None = None, mail: str | None = None,
                    password: str | None = None) -> None:
        changes: dict[str, Any] = {}
        if display_name is not None:
            changes["cn"] = [(MODIFY_REPLACE, [display_name or user])]
            changes["displayName"] = [(MODIFY_REPLACE, [display_name] if display_name else [])]
        if mail is not None:
            changes["mail"] = [(MODIFY_REPLACE, [mail] if mail else [])]
        if password is not None:
            changes["userPassword"] = [(MODIFY_REPLACE, [hashed_password(password)])]
        if changes:
            self._do(f"change user {user}", lambda: self.conn.modify(f"uid={user},{self.people}", changes))

    def delete_user(self, user: str) -> None:
        for g in self.groups():
            if user in g["members"]:
                self.set_members(g["group"], [m for m in g["members"] if m != user])
        self._do(f"remove user {user}", lambda: self.conn.delete(f"uid={user},{self.people}"))

    def add_group(self, group: str, description: str = "", members: list[str] | tuple = ()) -> None:
        attrs: dict[str, Any] = {"objectClass": ["posixGroup"], "cn": group, "gidNumber": self._next_id("gidNumber")}
        if description:
            attrs["description"] = description
        if members:
            attrs["memberUid"] = list(members)
        self._do(f"add group {group}", lambda: self.conn.add(f"cn={group},{self.groups_dn}", attributes=attrs))

    def set_members(self, group: str, members: list[str]) -> None:
        dn = f"cn={group},{self.groups_dn}"
        entries = self._search("(objectClass=*)", ["memberUid"], base=dn, scope=BASE)
        current = entries[0].get("memberuid", []) if entries else []
        changes = {"memberUid": [(MODIFY_REPLACE, list(members))]} if members else (
            {"memberUid": [(MODIFY_DELETE, [])]} if current else {})
        if changes:
            self._do(f"change group {group}", lambda: self.conn.modify(dn, changes))

    def set_description(self, group: str, description: str) -> None:
        dn = f"cn={group},{self.groups_dn}"
        change = [(MODIFY_REPLACE, [description])] if description else [(MODIFY_REPLACE, [])]
        self._do(f"change group {group}", lambda: self.conn.modify(dn, {"description": change}))

    def delete_group(self, group: str) -> None:
        self._do(f"remove group {group}", lambda: self.conn.delete(f"cn={group},{self.groups_dn}"))


def hashed_password(password: str) -> str:
    """An LDAP userPassword {CRYPT}$6$... (SHA512-CRYPT): slapd verifies it with crypt(3).

    Older entries hold {SSHA512} (one salted round); each is replaced by this scheme on the
    user's next password change.
    """
    return "{CRYPT}" + sha512_crypt_hash(password)


def _entry(response: dict[str, Any]) -> Entry:
    """One search result as {"dn", attribute (lower case): [values as text]}."""
    entry: Entry = {attr.lower(): [v.decode("utf-8", "replace") for v in values]
                    for attr, values in response["raw_attributes"].items()}
    entry["dn"] = response["dn"]
    return entry


def _first(entry: Entry, attr: str) -> str | None:
    values = entry.get(attr.lower())
    return values[0] if values else None


def escape(value: str) -> str:
    return escape_filter_chars(value)


def open_directory(instance: Instance, store: Store, name: str | None = None) -> Directory:
    """Connect to the selected (or the named) user domain."""
    conf = user_domain_config(store, name)
    if conf["embedded"]:
        engine = get_engine(instance.engine)
        ip = engine.container_ip(instance.container_name("openldap"), home_network(instance.name, "openldap"))
        return EmbeddedDirectory(conf, f"ldap://{ip}:389", f"cn=admin,{EMBEDDED_LDAP['base_dn']}",
                                 read_secret(instance, "ldap-admin-password"))
    password = ""
    if conf["bind_dn"]:
        path = instance.secrets_dir / f"ldap-bind-password-{conf['name']}"
        password = path.read_text() if path.exists() else ""
    return Directory(conf, conf["url"], conf["bind_dn"], password)


def open_embedded(instance: Instance, store: Store) -> EmbeddedDirectory:
    """The embedded domain, for the user and group actions (which only manage `local`)."""
    directory = open_directory(instance, store, EMBEDDED_LDAP["name"])
    assert isinstance(directory, EmbeddedDirectory)
    return directory
