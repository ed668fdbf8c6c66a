"""alter-user-mailbox: custom quota, custom spam retention, forward (with or without a copy).

Omitted fields keep their value; `custom: false` goes back to the default. Postfix reads
the forward from the state at query time; dovecot reads quota and retention from it too.
"""

from mailctl.directory import open_directory
from mailctl.mailboxes import check_forward, close_sessions, put_mailbox, require_user


def run(ctx, data):
    directory = open_directory(ctx.instance, ctx.store)
    user = require_user(directory, data["user"], ctx.reject)
    change = {"user": user}
    if "enabled" in data:
        change["enabled"] = data["enabled"]
    if "quota" in data:
        custom = data["quota"].get("custom", True)
        change.update(quota_custom=custom, quota_limit=data["quota"]["limit"] if custom else 0)
    if "spam_retention" in data:
        custom = data["spam_retention"].get("custom", True)
        change.update(spam_custom=custom, spam_retention=data["spam_retention"]["value"] if custom else 0)
    if "forward" in data:
        forward = data["forward"] if isinstance(data["forward"], dict) else {"destinations": []}  # NS8 example: []
        destinations = check_forward(directory, user, forward, ctx.reject)
        change.update(forward=destinations or None,
                      keepcopy=bool(destinations) and forward.get("keepcopy", False))
    put_mailbox(ctx.store, change)
    if change.get("enabled") is False:
        close_sessions(ctx.engine, ctx.instance, user)
    return {}
