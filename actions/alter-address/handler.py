"""alter-address: change destinations, visibility or description of an address.

For the automatic address of a user or group (atype adduser/addgroup) only
`internal` can change.
"""

from mailctl.addresses import address_key, get_address, normalize_destinations, put_address, set_internal_auto
from mailctl.directory import open_directory


def run(ctx, data):
    if data["atype"] in ("adduser", "addgroup"):
        return _alter_automatic(ctx, data)
    local, domain = address_key(ctx, data)
    current = get_address(ctx.store, local, domain)
    if current is None:
        ctx.reject("local", "address_not_found", data["local"])
    destinations = current["destinations"]
    if "destinations" in data:
        destinations = normalize_destinations(ctx, data["destinations"])
    put_address(ctx.store, local, domain, destinations, data.get("internal", current["internal"]),
                data.get("description", current["description"]))
    return {}


def _alter_automatic(ctx, data):
    directory = open_directory(ctx.instance, ctx.store)
    name = data["local"].lower()
    found = directory.user(name) if data["atype"] == "adduser" else directory.group(name)
    if found is None:
        ctx.reject("local", "address_not_found", data["local"])
    if "internal" in data:
        set_internal_auto(ctx.store, data["atype"], name, data["internal"])
    return {}
