"""list-addresses: explicit addresses, postmaster, and the automatic user/group addresses."""

from mailctl.addresses import list_addresses
from mailctl.directory import open_directory


def run(ctx, data):
    return list_addresses(ctx.store, open_directory(ctx.instance, ctx.store))
