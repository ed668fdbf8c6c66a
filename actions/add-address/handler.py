"""add-address: a new address for one domain or every domain (postfix reads it live: no reload)."""

from mailctl.addresses import address_key, normalize_destinations


def run(ctx, data):
    local, domain = address_key(ctx, data)
    if ctx.store.get_address(local, domain) is not None:
        ctx.reject("local", "address_already_exists", data["local"])
    destinations = normalize_destinations(ctx, data["destinations"])
    ctx.store.put_address(local, domain, destinations, data.get("internal", False), data.get("description", ""))
    return {}
