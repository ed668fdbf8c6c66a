"""remove-public-mailbox: delete a public mailbox, its messages and its addresses."""

from mailctl import publicmailboxes as pm
from mailctl.addresses import drop_destination


def run(ctx, data):
    mailbox = pm.find(ctx.store, data["mailbox"])
    if mailbox is None:
        ctx.reject("mailbox", "mailbox_not_found", data["mailbox"])
    name = mailbox["mailbox"]
    pm.delete(ctx.store, name)
    # Its address X@* goes; other addresses, catch-alls and forwards lose that destination.
    drop_destination(ctx.store, {"dtype": "public", "name": name})
    # Last: the messages cannot be brought back, so nothing that may fail comes after.
    dovecot = pm.Dovecot(ctx.engine, ctx.instance)
    if dovecot.exists(name):
        dovecot.remove(name)
    return {}
