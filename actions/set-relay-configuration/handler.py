"""set-relay-configuration: change the relay networks and/or the sender/login match (reloads postfix).

Omitted fields keep their value.
"""

from mailctl.relayaccess import normalize_networks


def run(ctx, data):
    relay = ctx.store.get("relay")
    if "networks" in data:
        relay["networks"] = normalize_networks(data["networks"], ctx.reject)
    if "postfix_restricted_sender" in data:
        relay["postfix_restricted_sender"] = data["postfix_restricted_sender"]
    ctx.store.set("relay", relay)
    return {}
