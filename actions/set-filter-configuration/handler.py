"""set-filter-configuration: antispam thresholds, greylist, DNS blocklists and antivirus.

Fields left out keep their value. Rspamd (and ClamAV for its signatures) reload with the
rendered files.
"""

from mailctl import filter as flt


def run(ctx, data):
    flt.apply_filter_change(ctx, data)
    return {}
