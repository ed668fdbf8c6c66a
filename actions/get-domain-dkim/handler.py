"""get-domain-dkim: whether a domain signs its mail and its default._domainkey TXT record."""

from mailctl import dkim
from mailctl.domains import get_domain


def run(ctx, data):
    domain = data["domain"].lower()
    if get_domain(ctx.store, domain) is None:
        ctx.reject("domain", "domain_not_found", data["domain"])
    return dkim.state(ctx.instance, ctx.store, domain)
