"""get-queue-settings: the queue lifetime in hours."""


def run(ctx, data):
    return {"maximal_queue_lifetime": ctx.store.get("queue")["maximal_queue_lifetime"]}
