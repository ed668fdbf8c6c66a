"""list-relay-rules: relay rules in evaluation order (sender, recipient, default); no passwords."""

from mailctl import relayrules


def run(ctx, data):
    rules = [
        {"rule_type": r["rule_type"], "rule_subject": r["rule_subject"], "host": r["host"], "port": r["port"],
         "tls": r["mandatory_tls"], "tls_verify": r["tls_verify"], "username": r["username"],
         "has_password": r["has_password"], "enabled": r["enabled"]}
        for r in relayrules.list_rules(ctx.store)
    ]
    return {"has_wildcard": any(r["rule_type"] == "wildcard" for r in rules), "rules": rules}
