"""alter-relay-rule: change a relay rule; its type and subject identify it and cannot change.

A password that is omitted (or empty) keeps the stored one; an empty username drops it.
"""

from mailctl import relayrules


def run(ctx, data):
    rule = relayrules.normalize(data, ctx.reject)
    if relayrules.get_rule(ctx.store, rule["rule_type"], rule["rule_subject"]) is None:
        relayrules.not_found(ctx.reject, data["rule_subject"])
    relayrules.save_rule(ctx, rule, data.get("password") or None)
    return {}
