"""add-group: a new group of the embedded domain; its address delivers to every member."""

from mailctl.directory import open_embedded


def run(ctx, data):
    directory = open_embedded(ctx.instance, ctx.store)
    group = data["group"].lower()
    if directory.group(group) is not None:
        ctx.reject("group", "group_already_exists", data["group"])
    users = {u["user"] for u in directory.users()}
    members = [m.lower() for m in data.get("members", [])]
    for m in members:
        if m not in users:
            ctx.reject("members", "user_not_found", m)
    directory.add_group(group, data.get("description", ""), members)
    ctx.undo.append(lambda: directory.delete_group(group))
    return {}
