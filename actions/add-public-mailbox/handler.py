"""add-public-mailbox: a mailbox shared by users and groups (IMAP ACL), with the address
<mailbox>@<every mail domain> (module/mailctl/publicmailboxes.py)."""

from mailctl import publicmailboxes as pm
from mailctl.addresses import get_address, put_address
from mailctl.directory import open_directory


def run(ctx, data):
    name = data["mailbox"]
    pm.check_name(ctx, name)
    if pm.find(ctx.store, name) is not None:
        ctx.reject("mailbox", "mailbox_already_exists", name)
    local = name.lower()
    if get_address(ctx.store, local, "*") is not None:
        ctx.reject("mailbox", "address_already_exists", name, f"the address {local}@* already exists")
    wanted = pm.check_acls(ctx, open_directory(ctx.instance, ctx.store), data["acls"])

    pm.put(ctx.store, name, pm.stored_acls(data["acls"]))
    put_address(ctx.store, local, "*", [{"dtype": "public", "name": name}], description=f"Public mailbox {name}")

    dovecot = pm.Dovecot(ctx.engine, ctx.instance)
    if not dovecot.exists(name):  # a folder left in dovecot is taken over with its messages
        dovecot.create(name)
        ctx.undo.append(lambda: dovecot.remove(name))
    before = dovecot.set_acl(name, wanted)
    ctx.undo.append(lambda: dovecot.set_acl(name, before))
    return {}
