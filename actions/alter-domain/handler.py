"""alter-domain: change a domain's options; fields left out keep their value."""

from mailctl.domains import check_domain_fields, get_domain, put_domain


def run(ctx, data):
    name = data["domain"].lower()
    current = get_domain(ctx.store, name)
    if current is None:
        ctx.reject("domain", "domain_not_found", data["domain"])
    domain = {**current, **{k: v for k, v in data.items() if k != "domain"}}
    check_domain_fields(ctx, domain)
    put_domain(ctx.store, domain)
    return {}
