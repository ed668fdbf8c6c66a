"""list-domains: every mail domain with its options and DKIM state."""

from mailctl import dkim


def run(ctx, data):
    signing = set(dkim.enabled_domains(ctx.store))
    return [{**d, "dkim": {"enabled": d["domain"] in signing, "selector": dkim.SELECTOR}}
            for d in ctx.store.list_domains()]
