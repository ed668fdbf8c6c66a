"""restore-module: put back a backup of this instance's data and state.

`path` is an archive made by `mailctl export`, or a directory of them: `snapshot` picks
one by file name, the newest by default. `repository` is a restic repository written by
`mailctl backup`: `snapshot` is a restic snapshot id, by default the latest of this
instance. Same steps as import-module.
"""

from pathlib import Path

from mailctl.backup import ArchiveError, ImportRequest, import_archive
from mailctl.restic import ResticError, restore_instance


def run(ctx, data):
    if not data.get("repository") and not data.get("path"):
        ctx.reject("path", "required", None, "give path (an export archive) or repository (restic)")
    try:
        if data.get("repository"):
            return restore_instance(ctx.instance, ctx.store, data["repository"], data.get("snapshot") or None,
                                    data.get("replace", False), ctx.engine)
        request = ImportRequest(Path(data["path"]), data.get("snapshot") or None, data.get("replace", False))
        import_archive(ctx.instance, ctx.store, request, ctx.engine)
    except (ArchiveError, ResticError) as exc:
        ctx.reject(exc.field, exc.error, data.get(exc.field), str(exc))
    return {}
