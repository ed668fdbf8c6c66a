"""remove-domain: stop accepting mail for a domain; delivered mail stays in the mailboxes."""


def run(ctx, data):
    name = data["domain"].lower()
    if ctx.store.get_domain(name) is None:
        ctx.reject("domain", "domain_not_found", data["domain"])
    ctx.store.delete_domain(name)
    # Each smtpd process caches the domain class of the recipients it has resolved
    # (smtpd_resolve.c): a reload retires those processes, so no stale "local domain"
    # answer keeps accepting mail for the removed domain.
    ctx.reload.add("postfix")
    return {}
