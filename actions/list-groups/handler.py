"""list-groups: groups of the selected user domain, with their members."""

from mailctl.directory import open_directory


def run(ctx, data):
    return {"groups": open_directory(ctx.instance, ctx.store).groups()}
