"""list-domains: every mail domain with its options and DKIM state."""

from mailctl import dkim
from mailctl.domains import list_domains, signing_domains


def run(ctx, data):
    signing = set(signing_domains(ctx.store))
    return [{**d, "dkim": {"enabled": d["domain"] in signing, "selector": dkim.SELECTOR}}
            for d in list_domains(ctx.store)]
