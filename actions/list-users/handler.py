"""list-users: users of the selected user domain, with their groups."""

from mailctl.directory import open_directory


def run(ctx, data):
    directory = open_directory(ctx.instance, ctx.store)
    groups = directory.groups()
    users = []
    for u in directory.users():
        users.append({"user": u["user"], "display_name": u["display_name"], "mail": u["mail"],
                      "groups": [g["group"] for g in groups if u["user"] in g["members"]]})
    return {"users": users}
