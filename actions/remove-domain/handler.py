"""remove-domain: stop accepting mail for a domain (postfix reads it live: no reload);
delivered mail stays in the mailboxes."""

from mailctl.addresses import delete_domain_addresses
from mailctl.domains import delete_domain, get_domain


def run(ctx, data):
    name = data["domain"].lower()
    if get_domain(ctx.store, name) is None:
        ctx.reject("domain", "domain_not_found", data["domain"])
    delete_domain(ctx.store, name)
    delete_domain_addresses(ctx.store, name)
    # No postfix reload: postfix reads the domains and addresses from the state at query
    # time, so a new RCPT TO is refused at once ("Relay access denied"). An smtpd process
    # that resolved the same sender and recipient before keeps that domain class in its
    # cache (smtpd_resolve.c), but reject_unlisted_recipient, which comes first in the
    # recipient restrictions, then finds no address, user, group or catch-all left for the
    # domain (the views join the domains table) and refuses with "User unknown". That
    # cache lives as long as the process (100 s idle, 100 sessions): for that long an
    # authenticated user who wrote to an address of the domain just before is refused
    # too, instead of relayed out, and sends again later.
    return {}
