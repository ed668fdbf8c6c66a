"""get-defaults: suggested hostname and mail domain, and the user domains to choose from."""

from mailctl.context import default_hostname
from mailctl.userdomains import list_user_domains


def run(ctx, data):
    hostname = default_hostname()
    return {
        "hostname": hostname,
        "mail_domain": hostname.split(".", 1)[1],
        "user_domains": list_user_domains(ctx.store),
    }
