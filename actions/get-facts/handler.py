"""get-facts: anonymous counters of domains, addresses, mailboxes and features in use."""

from mailctl.facts import collect


def run(ctx, data):
    return collect(ctx.instance, ctx.store)
