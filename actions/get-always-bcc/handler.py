"""get-always-bcc: the address that gets a hidden copy of every message ("" = off)."""


def run(ctx, data):
    return {"bcc": ctx.store.get("always_bcc") or ""}
