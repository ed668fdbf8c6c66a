"""get-queue-settings: the queue lifetime in hours, as a string of digits (NS8's type)."""


def run(ctx, data):
    return {"maximal_queue_lifetime": str(ctx.store.get("queue")["maximal_queue_lifetime"])}
