"""remove-sync-job: forget a sync job and its password; the mail it copied stays."""

from mailctl import imapsync


def run(ctx, data):
    imapsync.remove_job(ctx, data["job_id"])
    return {}
