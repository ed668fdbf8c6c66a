"""add-address: a new address for one domain or every domain (postfix reads it live: no reload)."""

from mailctl.addresses import address_key, get_address, normalize_destinations, put_address


def run(ctx, data):
    local, domain = address_key(ctx, data)
    if get_address(ctx.store, local, domain) is not None:
        ctx.reject("local", "address_already_exists", data["local"])
    destinations = normalize_destinations(ctx, data["destinations"])
    put_address(ctx.store, local, domain, destinations, data.get("internal", False), data.get("description", ""))
    return {}
