"""set-queue-settings: how long postfix retries a message before bouncing it (reloads postfix)."""


def run(ctx, data):
    ctx.store.set("queue", {"maximal_queue_lifetime": data["maximal_queue_lifetime"]})
    return {}
