"""alter-group: change a group's description or members."""

from mailctl.directory import open_embedded


def run(ctx, data):
    directory = open_embedded(ctx.instance, ctx.store)
    group = data["group"].lower()
    current = directory.group(group)
    if current is None:
        ctx.reject("group", "group_not_found", data["group"])
    if "members" in data:
        users = {u["user"] for u in directory.users()}
        members = [m.lower() for m in data["members"]]
        for m in members:
            if m not in users:
                ctx.reject("members", "user_not_found", m)
        directory.set_members(group, members)
        ctx.undo.append(lambda: directory.set_members(group, current["members"]))
    if "description" in data:
        directory.set_description(group, data["description"])
    return {}
