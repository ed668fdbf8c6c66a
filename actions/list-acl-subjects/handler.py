"""list-acl-subjects: the users (with an enabled mailbox) and groups that can be given rights."""

from mailctl import publicmailboxes as pm
from mailctl.addresses import disabled_users
from mailctl.directory import open_directory


def run(ctx, data):
    return pm.list_acl_subjects(open_directory(ctx.instance, ctx.store), disabled_users(ctx.store))
