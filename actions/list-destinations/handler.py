"""list-destinations: every user, group and public mailbox, for the pickers of the UI."""

from mailctl.addresses import list_destinations
from mailctl.directory import open_directory


def run(ctx, data):
    return list_destinations(ctx.store, open_directory(ctx.instance, ctx.store))
