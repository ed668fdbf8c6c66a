"""get-filter-configuration: antispam and antivirus settings, the Rspamd web UI address,
the number of bypass rules and ClamAV's memory use. Extensions to NS8's fields:
antispam.rbl, antispam.prefix_email_subject (the spam subject prefix), memory_info.used,
and live status: Bayes learn counts (antispam.bayes.learned), which DNS checks are off
while offline (antispam.dns), the signature databases and their last update."""

from mailctl import filter as flt
from mailctl import signatures
from mailctl.context import default_hostname


def run(ctx, data):
    hostname = ctx.store.get("hostname") or default_hostname()
    spam = flt.antispam(ctx.store)
    return {
        "bypass_rules": len(flt.list_bypass_rules(ctx.store)),
        "antispam": {
            **spam,
            "bayes": {**spam["bayes"], "learned": flt.bayes_learned(ctx)},
            "dns": flt.dns_status(ctx, spam),
            "rspamd_url": flt.rspamd_url(ctx.instance, hostname),
            "prefix_email_subject": ctx.store.get("mailbox_settings")["spam_prefix"],
        },
        "antivirus": {
            **flt.antivirus(ctx.store),
            **signatures.status(ctx),
            "memory_info": {
                "installed": flt.host_memory_mib(),
                "recommended": flt.OFFICIAL_SIGS_RECOMMENDED_MIB,
                "used": flt.clamav_memory_mib(ctx),
            },
        },
    }
