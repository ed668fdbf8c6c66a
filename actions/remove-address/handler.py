"""remove-address: delete an address; the wildcard postmaster cannot be removed."""

from mailctl.addresses import POSTMASTER, WILDCARD, address_key


def run(ctx, data):
    local, domain = address_key(ctx, data, must_exist_domain=False)
    if (local, domain) == (POSTMASTER, WILDCARD):
        ctx.reject("local", "address_delete_forbidden", data["local"],
                   "postmaster is required (RFC 5321): change its destinations instead")
    if ctx.store.get_address(local, domain) is None:
        ctx.reject("local", "address_not_found", data["local"])
    ctx.store.delete_address(local, domain)
    return {}
