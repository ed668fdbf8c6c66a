"""get-configuration: hostname, primary mail domain and user domain of the instance."""

from mailctl.context import default_hostname
from mailctl.userdomains import find_user_domain


def run(ctx, data):
    s = ctx.store.settings()
    return {
        "hostname": s["hostname"] or default_hostname(),
        "mail_domain": s["mail_domain"],
        "user_domain": find_user_domain(ctx.store, s["user_domain"]),
        "configured": bool(s["configured"]),
    }
