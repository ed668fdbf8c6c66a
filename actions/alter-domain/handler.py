"""alter-domain: change a domain's options; fields left out keep their value. The output
is the domain as list-domains shows it (NS8)."""

from mailctl.domains import check_domain_fields, get_domain, listed_domains, normalize_catchall, put_domain


def run(ctx, data):
    name = data["domain"].lower()
    current = get_domain(ctx.store, name)
    if current is None:
        ctx.reject("domain", "domain_not_found", data["domain"])
    domain = {**current, **{k: v for k, v in data.items() if k != "domain"}}
    check_domain_fields(ctx, domain)
    domain = normalize_catchall(ctx, domain)
    put_domain(ctx.store, domain)
    return listed_domains(ctx, [domain])[0]  # NS8 answers with the new domain state
