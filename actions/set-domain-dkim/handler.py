"""set-domain-dkim: sign (or stop signing) a domain's mail submitted on 587 and 465.

The first time signing is enabled the domain gets its RSA 2048 key (a secret file); the
key is kept when signing is disabled, so the published DNS record stays valid.
"""

from mailctl import dkim
from mailctl.domains import get_domain, set_signing


def run(ctx, data):
    domain = data["domain"].lower()
    if get_domain(ctx.store, domain) is None:
        ctx.reject("domain", "domain_not_found", data["domain"])
    if data["enabled"] and dkim.ensure_key(ctx.instance, domain):
        path = dkim.key_path(ctx.instance, domain)
        ctx.undo.append(lambda: path.unlink(missing_ok=True))
        ctx.reload.add("rspamd")  # copy the new key into the container
    set_signing(ctx.store, domain, data["enabled"])
    return dkim.state(ctx.instance, ctx.store, domain)
