"""import-module: replace this instance's data and state by an export (archive or directory).

The instance is stopped, its volumes and state replaced, its configuration rendered
again, and it is started again if it was running (module/mailctl/backup/).
"""

from pathlib import Path

from mailctl.backup import ArchiveError, ImportRequest, import_archive


def run(ctx, data):
    request = ImportRequest(Path(data["path"]), replace=data.get("replace", False))
    try:
        import_archive(ctx.instance, ctx.store, request, ctx.engine)
    except ArchiveError as exc:
        ctx.reject(exc.field, exc.error, data.get(exc.field), str(exc))
    return {}
