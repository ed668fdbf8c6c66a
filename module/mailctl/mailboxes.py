"""User mailboxes: their effective settings, quota usage read from dovecot, forwards, masters.

A mailbox has a row in the `mailboxes` table only once one of its settings differs
from the defaults (get_mailbox fills in the rest); postfix reads its forward from
`forward_targets` at query time. The defaults are the
`mailbox_settings` setting: quota (MiB), spam folder, subject prefix, spam retention.
"""

from __future__ import annotations

import json
from typing import Any

from .directory import Directory
from .engines import Engine
from .errors import Reject
from .recipients import destination_name, recipient_of
from .settings import Instance
from .state import Store

# The built-in master user (see secrets.ensure_secrets): "<user>*vmail" with its
# generated password opens any mailbox; reveal-master-credentials shows it.
MASTER_USER = "vmail"
MASTER_PASSWORD_SECRET = "vmail-master-password"
MASTER_SEPARATOR = "*"

# Rows ----------------------------------------------------------------------------------

def default_mailbox(user: str) -> dict[str, Any]:
    """The settings of a mailbox without a row."""
    return {"user": user.lower(), "enabled": True, "quota_custom": False, "quota_limit": 0,
            "spam_custom": False, "spam_retention": 0, "forward": None, "keepcopy": False}


def get_mailbox(store: Store, user: str) -> dict[str, Any]:
    """The settings of a user's mailbox (the defaults when it has no row)."""
    row = store.conn.execute("SELECT * FROM mailboxes WHERE user=?", (user.lower(),)).fetchone()
    return _mailbox(row) if row is not None else default_mailbox(user)


def _mailbox(row) -> dict[str, Any]:
    return {**dict(row), "enabled": bool(row["enabled"]), "quota_custom": bool(row["quota_custom"]),
            "spam_custom": bool(row["spam_custom"]), "keepcopy": bool(row["keepcopy"]),
            "forward": json.loads(row["forward"]) if row["forward"] else None}


def list_mailboxes(store: Store) -> list[dict[str, Any]]:
    """The mailboxes with a row (settings that differ from the defaults), by user: one query."""
    return [_mailbox(r) for r in store.conn.execute("SELECT * FROM mailboxes ORDER BY user")]


def put_mailbox(store: Store, m: dict[str, Any]) -> None:
    """Change the given settings of a mailbox (the others keep their value) and its forward targets."""
    m = {**get_mailbox(store, m["user"]), **m, "user": m["user"].lower()}
    store.upsert("mailboxes", {
        "user": m["user"], "enabled": int(m["enabled"]), "quota_custom": int(m["quota_custom"]),
        "quota_limit": m["quota_limit"], "spam_custom": int(m["spam_custom"]), "spam_retention": m["spam_retention"],
        "forward": json.dumps(m["forward"]) if m["forward"] else None, "keepcopy": int(m["keepcopy"]),
    }, ("user",))
    store.conn.execute("DELETE FROM forward_targets WHERE user=?", (m["user"],))
    if m["forward"]:
        targets = [recipient_of(d) for d in m["forward"]]
        if m["keepcopy"]:
            targets.append(recipient_of({"dtype": "user", "name": m["user"]}))
        store.conn.executemany("INSERT INTO forward_targets(user, target) VALUES(?, ?)",
                               [(m["user"], t) for t in targets])


# Dovecot -------------------------------------------------------------------------------

# The quota usage of each mailbox, from the table that dovecot's quota_clone plugin keeps
# current (templates/dovecot/dict-quota-clone.conf.ext): one query, where `doveadm quota
# get` opens every mailbox's indexes (10,000 mailboxes: seconds). Mailboxes the table
# lacks (the table starts empty with each new container: images/dovecot/entrypoint makes
# it, _QUOTA_READ too for an older image) are asked to doveadm once and written in; a
# change dovecot copies in meanwhile wins (INSERT OR IGNORE).
# LMTP runs without quota_clone (it recounts the whole quota after each delivery: ~40% of
# dovecot's CPU per message), so the rows of mailboxes that got mail since the last
# listing (a folder's new/ changed since the file `listed`) are asked to doveadm again.
QUOTA_CLONE_DB = "/var/lib/dovecot/quota-clone/quota.sqlite"
# Shell function of _QUOTA_READ and _QUOTA_FILL: ask doveadm the usage of the users named
# in the file $2 and write it into the table of $db, INSERT OR $1 (REPLACE: doveadm's
# figure is newer; IGNORE: a row dovecot copied in meanwhile wins).
_COPY_USAGE = r"""copy_usage() {
    doveadm -f tab quota get -F "$2" | awk -F '\t' '
        $3 == "STORAGE" { kib[$1] = $4 } $3 == "MESSAGE" { msgs[$1] = $4 }
        END { for (u in kib) print u "\t" kib[u] "\t" msgs[u] }' > "$2.found"
    sqlite3 -tabs "$db" ".timeout 5000" \
        "CREATE TEMP TABLE found (username TEXT, kib INTEGER, messages INTEGER)" ".import $2.found found" \
        "INSERT OR $1 INTO quota_clone SELECT username, kib * 1024, messages FROM found"
    rm -f "$2.found"
}
"""
# Argument: the database. Output: the table's rows (sqlite3 -json).
_QUOTA_READ = "exec 2>/dev/null\n" + _COPY_USAGE + r"""db=$1; dir=${db%/*}
if [ ! -s "$db" ]; then
    mkdir -p "$dir"
    sqlite3 "$db" "CREATE TABLE IF NOT EXISTS quota_clone (username TEXT PRIMARY KEY,
        bytes INTEGER NOT NULL DEFAULT 0, messages INTEGER NOT NULL DEFAULT 0)"
    chown -R dovecot:dovecot "$dir"
fi
# This listing's time, taken before the scan and set a second back: a change in the same
# clock tick as the mark would not be "newer" than it next time.
now=$(mktemp "$dir/listing.XXXXXX") && touch -d '1 second ago' "$now" || exit 1
if [ -e "$dir/listed" ]; then
    # The new/ folder of each mailbox's folders, named (not searched for: 10,000 mailboxes ~0.4 s).
    find /var/lib/vmail/[!.]*/Maildir/new /var/lib/vmail/[!.]*/Maildir/.*/new -maxdepth 0 \
        -newer "$dir/listed" | cut -d/ -f5 | sort -u > "$now.users"
    if [ -s "$now.users" ]; then copy_usage REPLACE "$now.users"; fi
    rm -f "$now.users"
else  # no listing since the container started: what deliveries changed is unknown
    sqlite3 "$db" ".timeout 5000" "DELETE FROM quota_clone"
fi
mv "$now" "$dir/listed"
sqlite3 -json "$db" ".timeout 5000" "SELECT username, bytes FROM quota_clone"
"""
# Arguments: the database, then the user names the table lacks. Output: as _QUOTA_READ.
_QUOTA_FILL = "exec 2>/dev/null\n" + _COPY_USAGE + r"""db=$1; shift; tmp=$(mktemp -d) || exit 1
printf '%s\n' "$@" > "$tmp/users"
copy_usage IGNORE "$tmp/users"
sqlite3 -json "$db" ".timeout 5000" "SELECT username, bytes FROM quota_clone"
rc=$?; rm -rf "$tmp"; exit $rc
"""


# Arguments: the database, then user names. Their rows go: the next quota_usage asks doveadm.
_QUOTA_FORGET = r"""exec 2>/dev/null
db=$1; shift
[ -s "$db" ] || exit 0
for user in "$@"; do
    quoted=$(printf '%s' "$user" | sed "s/'/''/g")
    sqlite3 "$db" ".timeout 5000" "DELETE FROM quota_clone WHERE username = '$quoted'"
done
"""


def forget_quota_usage(engine: Engine, instance: Instance, users: list[str]) -> None:
    """Drop the quota_clone rows of `users`: after a change made with the quota plugin off
    (doveadm import of a restore), the next quota_usage reads their usage from doveadm."""
    if users:
        engine.exec(instance.container_name("dovecot"), ["sh", "-c", _QUOTA_FORGET, "sh", QUOTA_CLONE_DB, *users])


def quota_usage(engine: Engine, instance: Instance, users: list[str]) -> dict[str, int]:
    """Storage used by each user's mailbox in KiB: one exec in the dovecot container, two
    when some mailboxes are not in the quota_clone table yet.

    Give only enabled mailboxes (dovecot looks up no disabled one); a stopped container
    gives no entry.
    """
    if not users:
        return {}
    container = instance.container_name("dovecot")
    usage = _clone_rows(engine.exec(container, ["sh", "-c", _QUOTA_READ, "sh", QUOTA_CLONE_DB])[1])
    missing = [u for u in users if u not in usage]
    if missing:
        usage = _clone_rows(engine.exec(container, ["sh", "-c", _QUOTA_FILL, "sh", QUOTA_CLONE_DB, *missing])[1])
    wanted = set(users)
    return {user: kib for user, kib in usage.items() if user in wanted}


def _clone_rows(out: str) -> dict[str, int]:
    """{user: KiB} from the sqlite3 -json rows of the quota_clone table (nothing when empty)."""
    try:
        rows = json.loads(out) if out.strip() else []
    except ValueError:
        return {}
    return {r["username"]: r["bytes"] // 1024 for r in rows if isinstance(r, dict)
            and isinstance(r.get("username"), str) and isinstance(r.get("bytes"), int)}


def quota_status(mailbox: dict[str, Any], default_limit: int, used_kib: int | None) -> dict[str, Any]:
    """The quota of one mailbox as list-user-mailboxes shows it (limit in MiB, 0 = none)."""
    limit = mailbox["quota_limit"] if mailbox["quota_custom"] else default_limit
    status: dict[str, Any] = {"limit": limit, "custom": mailbox["quota_custom"]}
    if used_kib is not None:
        status["value"] = round(used_kib / 1024)
        status["percent"] = round(used_kib * 100 / (limit * 1024)) if limit else 0  # NS8: an integer
    return status


def spam_retention_status(mailbox: dict[str, Any], default_days: int) -> dict[str, Any]:
    custom = mailbox["spam_custom"]
    return {"value": mailbox["spam_retention"] if custom else default_days, "custom": custom}


def forward_status(mailbox: dict[str, Any], users: set[str], groups: set[str]) -> dict[str, Any]:
    """The forward of a mailbox; a user or group that no longer exists is listed as `apo`."""
    destinations = []
    for d in mailbox["forward"] or []:
        gone = (d["dtype"] == "user" and d["name"].lower() not in users) or (
            d["dtype"] == "group" and d["name"].lower() not in groups)
        destinations.append({"dtype": "apo" if gone else d["dtype"], "name": d["name"]})
    return {"destinations": destinations, "keepcopy": mailbox["keepcopy"] if destinations else False}


def close_sessions(engine: Engine, instance: Instance, user: str) -> None:
    """Close a (just disabled) user's open IMAP/POP3 sessions; best effort, the container may be down."""
    engine.exec(instance.container_name("dovecot"), ["doveadm", "kick", user])


def require_user(directory: Directory, user: str, reject: Reject, field: str = "user") -> str:
    """The lower-case name of `user`, which must exist in the user domain."""
    if directory.user(user) is None:
        reject(field, "user_not_found", user, f"no user {user!r} in the user domain")
    return user.lower()


def check_forward(directory: Directory, user: str, forward: dict[str, Any], reject: Reject) -> list[dict[str, Any]]:
    """The forward destinations, checked: known users and groups, not the mailbox itself."""
    groups = {g["group"] for g in directory.groups()}
    checked = []
    for i, d in enumerate(forward["destinations"]):
        field = f"forward.destinations.{i}.name"
        name = destination_name(d)
        if d["dtype"] == "user":
            name = name.lower()
            if name == user:
                reject(field, "forward_to_itself", name, "use keepcopy to also keep the messages")
            require_user(directory, name, reject, field)
        elif d["dtype"] == "group":
            name = name.lower()
            if name not in groups:
                reject(field, "group_not_found", name, f"no group {name!r} in the user domain")
        elif d["dtype"] == "external":
            name = name.lower()
        checked.append({"dtype": d["dtype"], "name": name})
    return checked


def merge_settings(store: Store, data: dict[str, Any]) -> dict[str, Any]:
    """`mailbox_settings` with the given parts replaced; a disabled folder/prefix keeps its text."""
    settings = store.get("mailbox_settings")
    for key, value in data.items():
        settings[key] = {**settings.get(key, {}), **value}
    return settings
