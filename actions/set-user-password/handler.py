"""set-user-password: a new password for a user of the embedded domain."""

from mailctl.directory import open_embedded


def run(ctx, data):
    directory = open_embedded(ctx.instance, ctx.store)
    if directory.user(data["user"]) is None:
        ctx.reject("user", "user_not_found", data["user"])
    directory.modify_user(data["user"].lower(), password=data["password"])
    return {}
