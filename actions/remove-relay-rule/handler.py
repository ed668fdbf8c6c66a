"""remove-relay-rule: remove a relay rule (and its stored password)."""

from mailctl import relayrules


def run(ctx, data):
    relayrules.remove_rule(ctx, data["rule_subject"], data.get("rule_type"))
    return {}
