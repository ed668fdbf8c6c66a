"""seek-snapshot-contents: the IMAP folders of a user in a backup snapshot (NS8's action).

The repository is `repository` (extension) or NS8's `destination` + `repopath` (see
mailctl.snapshotcontent). Only the member names of the snapshot's mail volume are read.
"""

from mailctl.snapshotcontent import PUBLIC_OWNER, ContentError, resolve_source, snapshot_folders


def run(ctx, data):
    user = data["user"].lower() if data["user"] != PUBLIC_OWNER else PUBLIC_OWNER
    try:
        folders = snapshot_folders(ctx.instance, resolve_source(data), data["snapshot"], user)
    except ContentError as exc:
        ctx.reject(exc.field, exc.error, data.get(exc.field), str(exc))
    return {"request": data, "folders": folders}
