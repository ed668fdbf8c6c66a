"""list-user-domains: the embedded domain `local`, then every external LDAP domain."""

from mailctl.userdomains import list_user_domains


def run(ctx, data):
    return {"domains": list_user_domains(ctx.store, ctx.instance.secrets_dir)}
