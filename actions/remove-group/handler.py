"""remove-group: delete a group of the embedded domain."""

from mailctl.directory import open_embedded


def run(ctx, data):
    directory = open_embedded(ctx.instance, ctx.store)
    if directory.group(data["group"]) is None:
        ctx.reject("group", "group_not_found", data["group"])
    directory.delete_group(data["group"].lower())
    return {}
