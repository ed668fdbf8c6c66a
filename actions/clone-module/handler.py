"""clone-module: copy another instance of this host (its data and state) into this one.

The source is exported under its own action lock while it keeps running, then imported
here as import-module does.
"""

from mailctl.backup import ArchiveError, clone_instance


def run(ctx, data):
    try:
        clone_instance(ctx.instance, ctx.store, data["source"], data.get("replace", False), ctx.engine)
    except ArchiveError as exc:
        ctx.reject(exc.field, exc.error, data.get(exc.field), str(exc))
    return {}
