"""add-bypass-rule: messages from an IP, network, sender or to a recipient skip the filter.

The rule is kept as sent (list-bypass-rules shows it so); an equal rule (same address or
network, any case or notation) is refused. Rspamd reads the rules from rendered files
(settings.conf, maps/bypass-ip.map) and reloads.
"""

from mailctl import filter as flt


def run(ctx, data):
    value = flt.canonical_value(data)
    if data["type"] in ("email", "domain") and ("$" in value or value.startswith("/")):
        ctx.reject("value", "bypass_value_unsupported", data["value"],
                   "addresses with '$' or starting with '/' cannot be bypass rules")
    rule = {"type": data["type"], "direction": data["direction"], "value": data["value"].strip()}
    if not flt.add_bypass_rule(ctx.store, rule):
        ctx.reject("value", "bypass_rule_already_exists", data["value"])
    return {}
