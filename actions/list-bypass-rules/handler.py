"""list-bypass-rules: the rules that let messages skip the filter."""

from mailctl import filter as flt


def run(ctx, data):
    return {"bypass_rules": flt.list_bypass_rules(ctx.store)}
