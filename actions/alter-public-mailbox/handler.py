"""alter-public-mailbox: replace who may use a public mailbox and how (its IMAP ACL)."""

from mailctl import publicmailboxes as pm
from mailctl.directory import open_directory


def run(ctx, data):
    mailbox = pm.find(ctx.store, data["mailbox"])
    if mailbox is None:
        ctx.reject("mailbox", "mailbox_not_found", data["mailbox"])
    name = mailbox["mailbox"]
    wanted = pm.check_acls(ctx, open_directory(ctx.instance, ctx.store), data["acls"])
    pm.put(ctx.store, name, pm.stored_acls(data["acls"]))

    dovecot = pm.Dovecot(ctx.engine, ctx.instance)
    if not dovecot.exists(name):  # gone from dovecot (e.g. a restored state): made again
        dovecot.create(name)
        ctx.undo.append(lambda: dovecot.remove(name))
    before = dovecot.set_acl(name, wanted)
    ctx.undo.append(lambda: dovecot.set_acl(name, before))
    return {}
