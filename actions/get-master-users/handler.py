"""get-master-users: users that may open any mailbox as "<user>*<master>" with their own password."""


def run(ctx, data):
    return {"master_users": ctx.store.get("master_users")}
