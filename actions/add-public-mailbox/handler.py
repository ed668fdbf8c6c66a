"""add-public-mailbox: a mailbox shared by users and groups (IMAP ACL), with the address
<mailbox>@<every mail domain> (module/mailctl/publicmailboxes.py)."""

from mailctl import publicmailboxes as pm
from mailctl.addresses import get_address, put_address
from mailctl.directory import open_directory


def run(ctx, data):
    name = data["mailbox"]
    pm.check_name(ctx, name)
    dovecot = pm.Dovecot(ctx.engine, ctx.instance)
    # One deleted in dovecot behind the actions' back (an IMAP client, doveadm) is made again,
    # over what the state kept of it (NS8's scenario "orphantest").
    known = pm.find(ctx.store, name)  # names are compared in any case
    if known and dovecot.exists(known["mailbox"]):
        ctx.reject("mailbox", "mailbox_already_exists", name)
    local = name.lower()
    address = get_address(ctx.store, local, "*")
    own = known and address and address["destinations"] == [{"dtype": "public", "name": known["mailbox"]}]
    if address is not None and not own:
        ctx.reject("mailbox", "address_already_exists", name, f"the address {local}@* already exists")
    wanted = pm.check_acls(ctx, open_directory(ctx.instance, ctx.store), data["acls"])

    pm.put(ctx.store, name, pm.stored_acls(data["acls"]))
    put_address(ctx.store, local, "*", [{"dtype": "public", "name": name}], description=f"Public mailbox {name}")

    if not dovecot.exists(name):  # a folder left in dovecot is taken over with its messages
        dovecot.create(name)
        ctx.undo.append(lambda: dovecot.remove(name))
    before = dovecot.set_acl(name, wanted)
    ctx.undo.append(lambda: dovecot.set_acl(name, before))
    return {}
