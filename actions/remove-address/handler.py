"""remove-address: delete an address; the wildcard postmaster cannot be removed."""

from mailctl.addresses import POSTMASTER, WILDCARD, address_key, delete_address, get_address


def run(ctx, data):
    local, domain = address_key(ctx, data, must_exist_domain=False)
    if (local, domain) == (POSTMASTER, WILDCARD):
        ctx.reject("local", "address_delete_forbidden", data["local"],
                   "postmaster is required (RFC 5321): change its destinations instead")
    if get_address(ctx.store, local, domain) is None:
        ctx.reject("local", "address_not_found", data["local"])
    delete_address(ctx.store, local, domain)
    return {}
