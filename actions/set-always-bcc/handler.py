"""set-always-bcc: postfix always_bcc (main.cf, reloads postfix); "" turns it off.

`bcc_archive` is the NS8 name of the same field.
"""


def run(ctx, data):
    bcc = data["bcc"] if "bcc" in data else data["bcc_archive"]
    ctx.store.set("always_bcc", bcc.strip())
    return {}
