"""remove-user: delete a user of the embedded domain (the mailbox content is kept)."""

from mailctl.directory import open_embedded


def run(ctx, data):
    directory = open_embedded(ctx.instance, ctx.store)
    if directory.user(data["user"]) is None:
        ctx.reject("user", "user_not_found", data["user"])
    directory.delete_user(data["user"].lower())
    return {}
