"""list-public-mailboxes: every public mailbox with its ACL as dovecot has it."""

from mailctl import publicmailboxes as pm
from mailctl.directory import open_directory


def run(ctx, data):
    return pm.list_public_mailboxes(ctx.store, pm.Dovecot(ctx.engine, ctx.instance),
                                    open_directory(ctx.instance, ctx.store))
