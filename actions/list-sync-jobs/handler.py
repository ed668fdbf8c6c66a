"""list-sync-jobs: the IMAP sync jobs and the result of their last run (no passwords)."""

from mailctl import imapsync


def run(ctx, data):
    return imapsync.list_jobs(ctx.instance, ctx.store)
