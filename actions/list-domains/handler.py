"""list-domains: every mail domain with its options and DKIM state (extension `dkim`)."""

from mailctl.domains import list_domains, listed_domains


def run(ctx, data):
    return listed_domains(ctx, list_domains(ctx.store))
