"""alter-user: change a user's display name, mail attribute or group membership."""

from mailctl.directory import open_embedded


def run(ctx, data):
    directory = open_embedded(ctx.instance, ctx.store)
    user = data["user"].lower()
    current = directory.user(user)
    if current is None:
        ctx.reject("user", "user_not_found", data["user"])
    groups = {g["group"]: g for g in directory.groups()}
    for name in data.get("groups", []):
        if name.lower() not in groups:
            ctx.reject("groups", "group_not_found", name)
    directory.modify_user(user, data.get("display_name"), data.get("mail"))
    ctx.undo.append(lambda: directory.modify_user(user, current["display_name"], current["mail"]))
    if "groups" in data:
        wanted = {g.lower() for g in data["groups"]}
        for name, group in groups.items():
            member = user in group["members"]
            if member != (name in wanted):
                members = [m for m in group["members"] if m != user] + ([user] if name in wanted else [])
                directory.set_members(name, members)
                ctx.undo.append(lambda n=name, m=group["members"]: directory.set_members(n, m))
    return {}
