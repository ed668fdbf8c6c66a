"""flush-postfix-queue: resend or delete one queued message (by queue id), or all of them."""

from mailctl.mailqueue import Queue


def run(ctx, data):
    queue = Queue(ctx.engine, ctx.instance)
    action = data["action"]
    queue_id = None
    if action in ("resend", "delete"):
        queue_id = data["queue"]
        if queue_id not in queue.ids():
            ctx.reject("queue", "queue_id_not_found", queue_id, "no message in the queue has this id")
    if action.startswith("resend"):
        queue.resend(queue_id)
    else:
        queue.delete(queue_id)
    return {}
