"""alter-sync-job: change the fields given of a sync job (a new password replaces the old)."""

from mailctl import imapsync


def run(ctx, data):
    imapsync.alter_job(ctx, data)
    return {}
