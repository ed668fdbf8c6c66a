"""run-sync-job: run a sync job now; the output is its result (also kept for list-sync-jobs).

A failed run (a wrong remote password, an unreachable server) is a result, not an action
failure: it is reported in `state`/`error` and on the job.
"""

from mailctl import imapsync


def run(ctx, data):
    if data["job_id"] not in imapsync.jobs(ctx.store):
        ctx.reject("job_id", "job_not_found", data["job_id"], f"no sync job {data['job_id']}")
    return imapsync.run_job(ctx.instance, ctx.store, data["job_id"], ctx.engine)
