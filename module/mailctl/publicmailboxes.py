"""Public (shared) mailboxes: IMAP folders shared among users and groups by ACL (RFC 4314).

Design (see also the dovecot and postfix templates):
- A public mailbox X is a mailbox of the built-in dovecot user "vmail" (userdb
  public-owner.userdb), whose Maildir root is also the public namespace "Public/" of every
  user: vmail's mailbox X is everybody's "Public/X", and what each user may do there is
  its ACL (a dovecot-acl file in the mailbox, read by the acl plugin; "group=<name>"
  entries match the LDAP groups added at IMAP login by acl-groups-postlogin).
- The runtime creates, deletes and sets the ACL of these mailboxes with `doveadm ... -u
  vmail` in the dovecot container. The "owner" entry (vmail itself: it owns its private
  namespace; nobody owns a public one) always keeps every right, so delivery works.
- The state table `public_mailboxes` lists them: postfix rewrites X@public.internal (the
  target of any address whose destination is {dtype public, name X}) to
  vmail+X@mailbox.internal, and vmail's Sieve script files the message into X.
- Creating one adds the wildcard address X@* (X at every mail domain, seed: "the mail
  server will automatically add a new address for all existing mail domains").
- The ACL files are authoritative for the rights (an IMAP client with the admin right can
  change them with SETACL); the table keeps what the last action set, listed as a
  fallback when dovecot cannot be asked.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from .directory import Directory
from .engines import Engine
from .errors import MailError
from .settings import Instance
from .state import Store

OWNER = "vmail"  # the dovecot user whose mailboxes are the public mailboxes
OWNER_ID = "owner"  # ACL identifier of that user in its own (private) namespace
NAMESPACE_PREFIX = "Public/"
BUILTIN = "postmaster"  # the public mailbox of the postmaster address, in every state

# Dovecot right names in RFC 4314 order (l r s w i p k x t e a).
ALL_RIGHTS = ("lookup", "read", "write-seen", "write", "insert", "post", "create", "delete",
              "write-deleted", "expunge", "admin")
_RO = ("lookup", "read", "write-seen")
_RW = _RO + ("write", "insert", "post", "create", "write-deleted", "expunge")
# The presets of the rights picker: read only; read and write (messages can be added,
# flagged, deleted and expunged, subfolders created); full (also delete the folder and
# change its ACL).
PRESETS: dict[str, tuple[str, ...]] = {"ro": _RO, "rw": _RW, "full": ALL_RIGHTS}
# Names dovecot (Maildir, fs layout) cannot give a mailbox of vmail: its INBOX is the
# namespace root, and cur/new/tmp are Maildir's own directories.
RESERVED_NAMES = {"inbox", "cur", "new", "tmp"}


def ordered(rights: set[str] | list[str] | tuple[str, ...]) -> list[str]:
    return [r for r in ALL_RIGHTS if r in set(rights)]


def rights_values(rights: dict[str, Any]) -> list[str]:
    """The dovecot rights of an input `rights` object (a preset, or custom values)."""
    if rights["rtype"] in PRESETS:
        return list(PRESETS[rights["rtype"]])
    return ordered(rights.get("values", []))


def listed_rights(values: list[str]) -> dict[str, Any]:
    """Rights as list-public-mailboxes shows them: the preset they equal, else custom."""
    current = set(values) & set(ALL_RIGHTS)
    for rtype, preset in PRESETS.items():
        if current == set(preset):
            return {"rtype": rtype, "values": list(preset)}
    return {"rtype": "custom", "values": ordered(current)}


def acl_id(entry: dict[str, Any]) -> str:
    """The dovecot ACL identifier of an input entry: user=<name> or group=<name>."""
    return f"{entry['stype']}={entry['subject']['name'].lower()}"


# State -------------------------------------------------------------------------------

def find(store: Store, name: str) -> dict[str, Any] | None:
    """The public mailbox named `name` (any case), with its stored ACL entries."""
    row = store.conn.execute("SELECT mailbox, acls FROM public_mailboxes WHERE mailbox = ?", (name,)).fetchone()
    return {"mailbox": row["mailbox"], "acls": json.loads(row["acls"])} if row else None


def list_rows(store: Store) -> list[dict[str, Any]]:
    rows = store.conn.execute("SELECT mailbox, acls FROM public_mailboxes ORDER BY mailbox").fetchall()
    return [{"mailbox": r["mailbox"], "acls": json.loads(r["acls"])} for r in rows]


def put(store: Store, name: str, acls: list[dict[str, Any]]) -> None:
    store.upsert("public_mailboxes", {"mailbox": name, "acls": json.dumps(acls, sort_keys=True)}, ("mailbox",))


def names(store: Store) -> set[str]:
    """The names of the public mailboxes."""
    return {r["mailbox"] for r in store.conn.execute("SELECT mailbox FROM public_mailboxes")}


def delete(store: Store, name: str) -> None:
    """Forget the mailbox (the destinations pointing at it are addresses.drop_destination's)."""
    store.conn.execute("DELETE FROM public_mailboxes WHERE mailbox = ?", (name,))


# Input checks --------------------------------------------------------------------------

def check_name(ctx, name: str) -> None:
    if name.lower() in RESERVED_NAMES:
        ctx.reject("mailbox", "mailbox_name_reserved", name, f"{name!r} is reserved")


def check_acls(ctx, directory: Directory, acls: list[dict[str, Any]]) -> dict[str, list[str]]:
    """{dovecot id: rights} of the input entries; users and groups must exist.

    A subject given twice gets the rights of its last entry.
    """
    users = {u["user"] for u in directory.users()}
    groups = {g["group"] for g in directory.groups()}
    result: dict[str, list[str]] = {}
    for i, entry in enumerate(acls):
        if entry["stype"] == "none":  # listed for identifiers that are no user or group: ignored, as NS8
            continue
        name = entry["subject"]["name"].lower()
        known = users if entry["stype"] == "user" else groups
        if name not in known:
            ctx.reject(f"acls.{i}.subject.name", "acl_subject_not_found", entry["subject"]["name"],
                       f"no {entry['stype']} {entry['subject']['name']!r} in the user domain")
        result[acl_id(entry)] = rights_values(entry["rights"])
    return result


def stored_acls(acls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The input entries as kept in the state: lower-case names, no display names."""
    return [{"stype": e["stype"], "subject": {"dtype": e["subject"]["dtype"], "name": e["subject"]["name"].lower()},
             "rights": {"rtype": e["rights"]["rtype"], "values": rights_values(e["rights"])}}
            for e in acls if e["stype"] != "none"]


# Dovecot -------------------------------------------------------------------------------

class Dovecot:
    """doveadm commands on vmail's mailboxes, run in the instance's dovecot container."""

    def __init__(self, engine: Engine, instance: Instance):
        self.engine = engine
        self.container = instance.container_name("dovecot")

    def _sh(self, script: str, *args: str) -> tuple[int, str]:
        return self.engine.exec(self.container, ["sh", "-c", script, "sh", *args])

    def _doveadm(self, what: str, *args: str) -> str:
        code, out = self._sh('exec doveadm "$@"', *args)
        if code != 0:
            raise MailError(f"dovecot: {what} failed: {out.strip()[-300:] or f'exit {code}'}")
        return out

    def exists(self, mailbox: str) -> bool:
        code, out = self._sh('doveadm mailbox status -u "$1" guid "$2" 2>&1', OWNER, mailbox)
        if code == 0:
            return True
        if code == 68:  # EX_NOUSER: "Mailbox doesn't exist"
            return False
        raise MailError(f"dovecot: cannot look up mailbox {mailbox}: {out.strip()[-200:] or f'exit {code}'}")

    def mailboxes(self) -> set[str] | None:
        """vmail's top-level mailboxes (the public mailboxes dovecot has), None when dovecot
        cannot tell."""
        code, out = self._sh('doveadm mailbox list -u "$1" "%" 2>/dev/null', OWNER)
        if code != 0:
            return None
        return {line for line in out.splitlines() if line and line != "INBOX"}

    def create(self, mailbox: str) -> None:
        self._doveadm(f"create mailbox {mailbox}", "mailbox", "create", "-u", OWNER, mailbox)

    def remove(self, mailbox: str) -> None:
        """Delete the mailbox, its messages and its subfolders (made over IMAP)."""
        self._doveadm(f"delete mailbox {mailbox}", "mailbox", "delete", "-r", "-u", OWNER, mailbox)

    def get_acl(self, mailbox: str) -> dict[str, list[str]]:
        out = self._doveadm(f"read the ACL of {mailbox}", "-f", "json", "acl", "get", "-u", OWNER, mailbox)
        return _parse_acl(out)

    def get_acls(self, mailboxes: list[str]) -> dict[str, dict[str, list[str]]]:
        """The ACL of each mailbox in one exec; a mailbox dovecot cannot read is left out."""
        if not mailboxes:
            return {}
        script = ('for m; do r=$(doveadm -f json acl get -u ' + OWNER + ' "$m" 2>/dev/null) || continue; '
                  'printf "%s\\t%s\\n" "$m" "$r"; done')
        code, out = self._sh(script, *mailboxes)
        if code != 0:
            return {}
        result = {}
        for line in out.splitlines():
            name, sep, raw = line.partition("\t")
            if sep:
                try:
                    result[name] = _parse_acl(raw)
                except ValueError:
                    continue
        return result

    def set_acl(self, mailbox: str, wanted: dict[str, list[str]]) -> dict[str, list[str]]:
        """Make the mailbox's ACL exactly `wanted` (plus the owner's full rights).

        Returns the ACL it had, for undo.
        """
        before = self.get_acl(mailbox)
        wanted = {**wanted, OWNER_ID: list(ALL_RIGHTS)}
        commands = [shlex.join(["doveadm", "acl", "delete", "-u", OWNER, mailbox, i])
                    for i in before if i not in wanted]
        commands += [shlex.join(["doveadm", "acl", "set", "-u", OWNER, mailbox, i, *rights])
                     for i, rights in wanted.items() if ordered(before.get(i, [])) != ordered(rights)]
        if commands:
            code, out = self._sh(" && ".join(commands))
            if code != 0:
                raise MailError(f"dovecot: set the ACL of {mailbox} failed: {out.strip()[-300:]}")
        return before


def _parse_acl(raw: str) -> dict[str, list[str]]:
    """`doveadm -f json acl get` output -> {id: rights}."""
    raw = raw.strip()
    if not raw:
        return {}
    return {e["id"]: e["rights"].split() for e in json.loads(raw) if e.get("id")}


# Listing -------------------------------------------------------------------------------

def listed_acl(acl: dict[str, list[str]], users: dict[str, dict], groups: dict[str, dict]) -> list[dict[str, Any]]:
    """A dovecot ACL for list-public-mailboxes: users and groups gone from LDAP are `apo`,
    other identifiers (anyone, authenticated, ...) have stype none; the owner is hidden."""
    entries = []
    for ident, rights in sorted(acl.items()):
        kind, _, name = ident.partition("=")
        if ident == OWNER_ID:
            continue
        if kind == "user" and name:
            user = users.get(name.lower())
            subject = ({"dtype": "user", "name": user["user"], "ui_name": user["display_name"] or user["user"]}
                       if user else {"dtype": "apo", "name": name})
        elif kind == "group" and name:
            group = groups.get(name.lower())
            subject = ({"dtype": "group", "name": group["group"], "ui_name": group["description"] or group["group"]}
                       if group else {"dtype": "apo", "name": name})
        else:
            kind, subject = "none", {"dtype": "apo", "name": ident}
        entries.append({"stype": kind, "subject": subject, "rights": listed_rights(rights)})
    return entries


def list_public_mailboxes(store: Store, dovecot: Dovecot, directory: Directory) -> list[dict[str, Any]]:
    """The public mailboxes dovecot has (as NS8, which asks dovecot): one deleted over IMAP
    or with doveadm is not listed, and add-public-mailbox makes it again. The built-in
    postmaster is always there (dovecot makes its folder at the first delivery)."""
    rows = list_rows(store)
    present = dovecot.mailboxes()
    if present is not None:
        rows = [r for r in rows if r["mailbox"] in present or r["mailbox"] == BUILTIN]
    live = dovecot.get_acls([r["mailbox"] for r in rows])
    users = {u["user"]: u for u in directory.users()}
    groups = {g["group"]: g for g in directory.groups()}
    result = []
    for row in rows:
        acl = live.get(row["mailbox"])
        if acl is None:  # dovecot could not tell: what the last action set
            acl = {acl_id(e): e["rights"]["values"] for e in row["acls"]}
        result.append({"mailbox": row["mailbox"], "acls": listed_acl(acl, users, groups)})
    return result


def list_acl_subjects(directory: Directory, hidden_users: set[str] = frozenset()) -> list[dict[str, Any]]:
    """Every user and group of the user domain, the subjects rights can be given to
    (NS8 hides the users whose mailbox is disabled: `hidden_users`)."""
    subjects = [{"dtype": "user", "name": u["user"], "ui_name": u["display_name"] or u["user"]}
                for u in directory.users() if u["user"] not in hidden_users]
    subjects += [{"dtype": "group", "name": g["group"], "ui_name": g["description"] or g["group"]}
                 for g in directory.groups()]
    return subjects
