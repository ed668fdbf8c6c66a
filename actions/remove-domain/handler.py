"""remove-domain: stop accepting mail for a domain; delivered mail stays in the mailboxes."""

from mailctl.addresses import delete_domain_addresses
from mailctl.domains import delete_domain, get_domain


def run(ctx, data):
    name = data["domain"].lower()
    if get_domain(ctx.store, name) is None:
        ctx.reject("domain", "domain_not_found", data["domain"])
    delete_domain(ctx.store, name)
    delete_domain_addresses(ctx.store, name)
    # Each smtpd process caches the domain class of the recipients it has resolved
    # (smtpd_resolve.c): a reload retires those processes, so no stale "local domain"
    # answer keeps accepting mail for the removed domain.
    ctx.reload.add("postfix")
    return {}
