"""list-acl-subjects: the users and groups of the user domain that can be given rights."""

from mailctl import publicmailboxes as pm
from mailctl.directory import open_directory


def run(ctx, data):
    return pm.list_acl_subjects(open_directory(ctx.instance, ctx.store))
