"""list-domains: every mail domain with its options and DKIM state."""


def run(ctx, data):
    return [{**d, "dkim": {"enabled": False}} for d in ctx.store.list_domains()]
