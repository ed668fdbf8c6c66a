"""remove-bypass-rule: delete a filter bypass rule (same three fields as add-bypass-rule;
the value matches in any case or notation)."""

from mailctl import filter as flt


def run(ctx, data):
    if not flt.remove_bypass_rule(ctx.store, data):
        ctx.reject("value", "bypass_rule_not_found", data["value"])
    return {}
