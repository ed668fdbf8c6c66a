"""alter-domain: change a domain's options; fields left out keep their value."""

from mailctl.domains import check_domain_fields


def run(ctx, data):
    name = data["domain"].lower()
    current = ctx.store.get_domain(name)
    if current is None:
        ctx.reject("domain", "domain_not_found", data["domain"])
    domain = {**current, **{k: v for k, v in data.items() if k != "domain"}}
    check_domain_fields(ctx, domain)
    ctx.store.put_domain(domain)
    return {}
