"""add-bypass-rule: messages from an IP, network, sender or to a recipient skip the filter.

Rspamd reads the rules from rendered files (settings.conf, maps/bypass-ip.map) and reloads.
"""

from mailctl import filter as flt


def run(ctx, data):
    rule = flt.normalize_rule(data)
    if rule["type"] in ("email", "domain") and ("$" in rule["value"] or rule["value"].startswith("/")):
        ctx.reject("value", "bypass_value_unsupported", data["value"],
                   "addresses with '$' or starting with '/' cannot be bypass rules")
    if not flt.add_bypass_rule(ctx.store, rule):
        ctx.reject("value", "bypass_rule_already_exists", data["value"])
    return {}
