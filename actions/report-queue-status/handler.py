"""report-queue-status: every message in the postfix queue, with its delay reason."""

from mailctl.mailqueue import Queue


def run(ctx, data):
    return {"queue_status": Queue(ctx.engine, ctx.instance).messages()}
