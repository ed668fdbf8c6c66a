"""set-mailbox-settings: change the mailbox defaults; omitted fields keep their value.

quota: dovecot's userdb (sql-userdb.conf.ext); spam_folder: the global sieve script
filing spam (sieve/spam-folder.sieve) and the \\Junk special-use folder; spam_prefix:
rspamd's rewrite_subject action; spam_retention: the daily expunge job of the dovecot
container (spam-retention.env); sharedseen: public mailboxes.
"""

from mailctl.mailboxes import merge_settings


def run(ctx, data):
    name = data.get("spam_folder", {}).get("name")
    if name is not None and (set(name) & set('"\\') or name.upper() == "INBOX"):
        ctx.reject("spam_folder.name", "spam_folder_name_invalid", name,
                   'a folder name other than INBOX, without " or \\')
    ctx.store.set("mailbox_settings", merge_settings(ctx.store, data))
    return {}
