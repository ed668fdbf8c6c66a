"""trace-message: every daemon's log lines about one message (by Message-ID), in time order."""

from mailctl import mailqueue


def run(ctx, data):
    message_id = data["message_id"].strip().removeprefix("<").removesuffix(">")
    return mailqueue.trace(mailqueue.read_logs(ctx.engine, ctx.instance), message_id)
