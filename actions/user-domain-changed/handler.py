"""user-domain-changed (event): the selected user domain changed outside this module.

Postfix and dovecot get its current settings and bind password again and reconnect;
user and group addresses are looked up in LDAP at query time, so nothing else is cached.
"""

from mailctl.external_ldap import LDAP_DAEMONS, sync_bind_secret


def run(ctx, data):
    selected = ctx.store.get("user_domain")
    changed = [data["domain"]] if data.get("domain") else list(data.get("domains") or [])
    if changed and selected not in changed:
        return {}  # another user domain: nothing here uses it
    sync_bind_secret(ctx)
    ctx.reload |= set(LDAP_DAEMONS)
    return {}
