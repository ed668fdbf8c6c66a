"""set-mailbox-enabled: a disabled mailbox cannot log in and receives nothing.

Dovecot's deny passdb and userdb, and postfix's recipient check, read the flag from the
state at query time: no reload is needed. Open sessions of a disabled user are closed.
"""

from mailctl.directory import open_directory
from mailctl.mailboxes import close_sessions, put_mailbox, require_user


def run(ctx, data):
    user = require_user(open_directory(ctx.instance, ctx.store), data["user"], ctx.reject)
    put_mailbox(ctx.store, {"user": user, "enabled": data["enabled"]})
    if not data["enabled"]:
        close_sessions(ctx.engine, ctx.instance, user)
    return {}
