"""set-user-domain: add or change an external LDAP user domain (RFC 2307 or Active Directory).

The server must answer and the bind must work before the domain is accepted. The
bind password goes only into a secret file; leaving it out keeps the stored one
(when the bind DN is unchanged). If the domain is the selected one, postfix and
dovecot pick up the change at once.

Passwords never cross the network in clear by default: a plain ldap:// URL needs
STARTTLS (`tls`) unless `allow_plaintext` says otherwise, and the server's certificate
is verified unless `tls_verify` is false (a self-signed directory server).
"""

from mailctl.external_ldap import (
    find_external,
    is_embedded,
    probe,
    save_external,
    store_password,
    stored_password,
    sync_bind_secret,
)


def run(ctx, data):
    name = data["name"]
    if is_embedded(name):
        ctx.reject("name", "user_domain_reserved", name, "the embedded user domain cannot be changed")
    bind_dn = data.get("bind_dn", "")
    password = data.get("bind_password")
    previous = find_external(ctx.store, name)
    if password is None:
        if bind_dn and previous and previous.get("bind_dn") == bind_dn:
            password = stored_password(ctx, name)
        elif bind_dn:
            ctx.reject("bind_password", "bind_password_required", None, "a bind DN needs its password")
        else:
            password = ""
    if password != password.strip():
        ctx.reject("bind_password", "bind_password_whitespace", None,
                   "postfix cannot use a bind password that starts or ends with a space")
    tls = bool(data.get("tls", False))
    # User passwords are checked by binding as the user: never in clear unless asked for.
    if data["url"].startswith("ldap://") and not tls and not data.get("allow_plaintext", False):
        ctx.reject("tls", "ldap_plaintext_refused", False,
                   "ldap:// without STARTTLS sends passwords in clear: set tls, use ldaps://, "
                   "or set allow_plaintext to accept it")
    tls_verify = bool(data.get("tls_verify", True))
    problem = probe(data["url"], data["base_dn"], bind_dn, password, tls, verify=tls_verify)
    if problem is not None:
        value = None if problem.field == "bind_password" else data.get(problem.field)
        ctx.reject(problem.field, problem.error, value, problem.message)
    save_external(ctx.store, {"name": name, "schema": data["schema"], "url": data["url"],
                              "base_dn": data["base_dn"], "bind_dn": bind_dn, "tls": tls,
                              "tls_verify": tls_verify, "allow_plaintext": bool(data.get("allow_plaintext"))})
    store_password(ctx, name, password)
    sync_bind_secret(ctx)
    return {}
