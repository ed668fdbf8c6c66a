"""configure-module: the first-configuration wizard (hostname, user domain, primary mail domain)."""

from mailctl.domains import get_domain, new_domain, put_domain
from mailctl.external_ldap import sync_bind_secret
from mailctl.tls import regenerate_if_self_signed
from mailctl.userdomains import find_user_domain


def run(ctx, data):
    store = ctx.store
    if find_user_domain(store, data["user_domain"]) is None:
        ctx.reject("user_domain", "user_domain_not_found", data["user_domain"],
                   "no such user domain: see list-user-domains")
    hostname = data["hostname"].lower()
    store.set("hostname", hostname)
    store.set("user_domain", data["user_domain"])
    sync_bind_secret(ctx)  # the mounted bind password follows the selected user domain
    mail_domain = (data.get("mail_domain") or "").lower()
    if mail_domain:
        store.set("mail_domain", mail_domain)
        if get_domain(store, mail_domain) is None:
            put_domain(store, new_domain(mail_domain, addusers=True, description="Primary mail domain"))
    store.set("configured", True)
    if regenerate_if_self_signed(ctx.instance.tls_dir, hostname):
        ctx.reload |= {"postfix", "dovecot"}
    return {}
