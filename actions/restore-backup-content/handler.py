"""restore-backup-content: restore one IMAP folder of a user, with its subfolders, from a
backup snapshot into "Restored folder/<folder name>" of that user (for `vmail`, the
public mailboxes' owner: "<folder>/Restored folder/<folder name>"), as NS8 does.

The messages go through `doveadm import` (mailctl.snapshotcontent). As NS8, the quota
does not stop the import; if the mailbox is then over its limit, the user's quota is
disabled (a custom quota of 0, "no limit") and `quota_disabled` says so.
"""

from mailctl.directory import open_directory
from mailctl.mailboxes import get_mailbox, put_mailbox, quota_usage, require_user
from mailctl.snapshotcontent import PUBLIC_OWNER, ContentError, FolderSelection, resolve_source, restore_folder


def run(ctx, data):
    user = data["user"]
    if user != PUBLIC_OWNER:
        user = require_user(open_directory(ctx.instance, ctx.store), user, ctx.reject)
    try:
        result = restore_folder(ctx.instance, ctx.engine, resolve_source(data), data["snapshot"],
                                FolderSelection(user, data["folder"]))
    except ContentError as exc:
        ctx.reject(exc.field, exc.error, data.get(exc.field), str(exc))
    quota_disabled = user != PUBLIC_OWNER and _disable_quota_if_exceeded(ctx, user)
    return {"request": data, "quota_disabled": quota_disabled, **result}


def _disable_quota_if_exceeded(ctx, user: str) -> bool:
    mailbox = get_mailbox(ctx.store, user)
    default = ctx.store.get("mailbox_settings")["quota"]["limit"]
    limit = mailbox["quota_limit"] if mailbox["quota_custom"] else default
    if not limit:
        return False
    used_kib = quota_usage(ctx.engine, ctx.instance, [user]).get(user, 0)
    if used_kib <= limit * 1024:
        return False
    put_mailbox(ctx.store, {"user": user, "quota_custom": True, "quota_limit": 0})
    return True
