"""add-domain: accept mail for a new domain (postfix reads it live: no reload)."""

from mailctl.domains import check_domain_fields, get_domain, new_domain, normalize_catchall, put_domain


def run(ctx, data):
    name = data["domain"].lower()
    if get_domain(ctx.store, name) is not None:
        ctx.reject("domain", "domain_already_exists", data["domain"])
    domain = new_domain(name, **{k: v for k, v in data.items() if k != "domain"})
    check_domain_fields(ctx, domain)
    domain = normalize_catchall(ctx, domain)
    put_domain(ctx.store, domain)
    return {}
