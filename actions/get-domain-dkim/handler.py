"""get-domain-dkim: whether a domain signs its mail and its default._domainkey TXT record."""

from mailctl import dkim


def run(ctx, data):
    domain = data["domain"].lower()
    if ctx.store.get_domain(domain) is None:
        ctx.reject("domain", "domain_not_found", data["domain"])
    return dkim.state(ctx.instance, ctx.store, domain)
