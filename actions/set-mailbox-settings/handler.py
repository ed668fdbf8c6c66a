"""set-mailbox-settings: change the mailbox defaults; omitted fields keep their value.

quota: dovecot's userdb (sql-userdb.conf.ext); spam_folder: the global sieve script
filing spam; spam_prefix: rspamd's rewrite_subject action; spam_retention: the daily
expunge job of the dovecot container; sharedseen: public mailboxes.
"""

from mailctl.mailboxes import merge_settings


def run(ctx, data):
    ctx.store.set("mailbox_settings", merge_settings(ctx.store, data))
    return {}
