"""add-user: a new user of the embedded user domain; its address exists in every addusers domain."""

from mailctl.directory import open_embedded

# "vmail" owns the public mailboxes and is the built-in master user.
RESERVED_NAMES = {"vmail", "postmaster"}


def run(ctx, data):
    directory = open_embedded(ctx.instance, ctx.store)
    user = data["user"].lower()
    if user in RESERVED_NAMES:
        ctx.reject("user", "user_name_reserved", data["user"], "this name is used by the mail server itself")
    if directory.user(user) is not None:
        ctx.reject("user", "user_already_exists", data["user"])
    directory.add_user(user, data["password"], data.get("display_name", ""), data.get("mail", ""))
    ctx.undo.append(lambda: directory.delete_user(user))
    return {}
