"""add-domain: accept mail for a new domain (postfix reads it live: no reload)."""

from mailctl.domains import check_domain_fields
from mailctl.state import new_domain


def run(ctx, data):
    name = data["domain"].lower()
    if ctx.store.get_domain(name) is not None:
        ctx.reject("domain", "domain_already_exists", data["domain"])
    domain = new_domain(name, **{k: v for k, v in data.items() if k != "domain"})
    check_domain_fields(ctx, domain)
    ctx.store.put_domain(domain)
    return {}
