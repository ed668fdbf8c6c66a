"""list-user-mailboxes: every user of the user domain with its mailbox settings and quota usage."""

from mailctl.directory import open_directory
from mailctl.mailboxes import (
    default_mailbox,
    forward_status,
    list_mailboxes,
    quota_status,
    quota_usage,
    spam_retention_status,
)


def run(ctx, data):
    directory = open_directory(ctx.instance, ctx.store)
    users = [u["user"] for u in directory.users()]
    known = set(users)
    groups = {g["group"] for g in directory.groups()}
    defaults = ctx.store.get("mailbox_settings")
    default_quota = defaults["quota"]["limit"]
    default_retention = defaults["spam_retention"]["value"]
    rows = {m["user"]: m for m in list_mailboxes(ctx.store)}  # one query, not one per user
    # Disabled mailboxes show no usage: dovecot does not look them up.
    usage = quota_usage(ctx.engine, ctx.instance, [u for u in users if u not in rows or rows[u]["enabled"]])
    mailboxes = []
    for user in users:
        m = rows.get(user) or default_mailbox(user)
        mailboxes.append({
            "user": user,
            "enabled": m["enabled"],
            "quota": quota_status(m, default_quota, usage.get(user)),
            "spam_retention": spam_retention_status(m, default_retention),
            "forward": forward_status(m, known, groups),
        })
    return {"default_quota": {"limit": default_quota}, "default_spam_retention": {"value": default_retention},
            "user_mailboxes": mailboxes}
