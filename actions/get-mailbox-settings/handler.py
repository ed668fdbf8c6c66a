"""get-mailbox-settings: default quota, shared seen flag, spam folder, subject prefix, spam retention."""


def run(ctx, data):
    s = ctx.store.get("mailbox_settings")
    return {key: s[key] for key in ("quota", "sharedseen", "spam_folder", "spam_prefix", "spam_retention")}
