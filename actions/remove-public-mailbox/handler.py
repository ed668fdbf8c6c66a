"""remove-public-mailbox: delete a public mailbox, its messages and its addresses.

The input may also be a list of {mailbox} objects (the form of NS8's example): all are
checked before any is removed.
"""

from mailctl import publicmailboxes as pm
from mailctl.addresses import POSTMASTER, WILDCARD, drop_destination, get_address


def run(ctx, data):
    names = [_checked(ctx, item["mailbox"]) for item in (data if isinstance(data, list) else [data])]
    for name in dict.fromkeys(names):
        pm.delete(ctx.store, name)
        # Its address X@* goes; other addresses, catch-alls and forwards lose that destination.
        drop_destination(ctx.store, {"dtype": "public", "name": name})
    # Last: the messages cannot be brought back, so nothing that may fail comes after.
    dovecot = pm.Dovecot(ctx.engine, ctx.instance)
    for name in dict.fromkeys(names):
        if dovecot.exists(name):
            dovecot.remove(name)
    return {}


def _checked(ctx, given):
    """The stored name of the public mailbox `given`, which may be removed."""
    mailbox = pm.find(ctx.store, given)
    if mailbox is None:
        ctx.reject("mailbox", "mailbox_not_found", given)
    postmaster = get_address(ctx.store, POSTMASTER, WILDCARD)
    if postmaster and postmaster["destinations"] == [{"dtype": "public", "name": mailbox["mailbox"]}]:
        # removing it would remove postmaster (NS8 does), which RFC 5321 requires
        ctx.reject("mailbox", "mailbox_is_postmaster_destination", given,
                   "postmaster delivers here: give the postmaster address another destination first")
    return mailbox["mailbox"]
