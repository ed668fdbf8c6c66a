"""restore-module: put back a backup of this instance's data and state.

`path` is an archive made by `mailctl export`, or a directory of them: `snapshot` picks
one by file name, the newest by default. Same steps as import-module.
"""

from pathlib import Path

from mailctl.backup import ArchiveError, ImportRequest, import_archive


def run(ctx, data):
    request = ImportRequest(Path(data["path"]), data.get("snapshot") or None, data.get("replace", False))
    try:
        import_archive(ctx.instance, ctx.store, request, ctx.engine)
    except ArchiveError as exc:
        ctx.reject(exc.field, exc.error, data.get(exc.field), str(exc))
    return {}
