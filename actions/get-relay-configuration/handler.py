"""get-relay-configuration: networks relaying without AUTH, and the sender/login match switch."""


def run(ctx, data):
    relay = ctx.store.get("relay")
    return {"networks": relay["networks"], "postfix_restricted_sender": bool(relay["postfix_restricted_sender"])}
