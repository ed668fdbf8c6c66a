"""set-master-users: the users of the user domain that may open any mailbox (dovecot master passdb)."""

from mailctl.directory import open_directory
from mailctl.mailboxes import require_user


def run(ctx, data):
    directory = open_directory(ctx.instance, ctx.store)
    masters = [require_user(directory, u, ctx.reject, f"master_users.{i}") for i, u in enumerate(data["master_users"])]
    if len(set(masters)) != len(masters):
        ctx.reject("master_users", "master_users_duplicate", None, "a user is listed twice")
    ctx.store.set("master_users", masters)
    return {}
