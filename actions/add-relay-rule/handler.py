"""add-relay-rule: send mail of a sender, of a recipient, or by default through a relay host."""

from mailctl import relayrules


def run(ctx, data):
    rule = relayrules.normalize(data, ctx.reject)
    if relayrules.get_rule(ctx.store, rule["rule_type"], rule["rule_subject"]) is not None:
        ctx.reject("rule_subject", "rule_already_exists", data["rule_subject"],
                   "a relay rule of this type has this subject: alter it instead")
    relayrules.save_rule(ctx, rule, data.get("password") or "")
    return {}
