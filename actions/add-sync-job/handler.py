"""add-sync-job: copy a remote IMAP account into a local mailbox, once or every N minutes."""

from mailctl import imapsync


def run(ctx, data):
    return {"job_id": imapsync.add_job(ctx, data)}
