"""get-defaults: suggested hostname and mail domain, and the user domains to choose from."""

from mailctl.context import default_hostname
from mailctl.userdomains import list_user_domains


def run(ctx, data):
    hostname = default_hostname()
    parent = hostname.split(".", 1)[1]
    return {
        "hostname": hostname,
        "mail_domain": parent if "." in parent else "",
        "user_domains": list_user_domains(ctx.store),
    }
