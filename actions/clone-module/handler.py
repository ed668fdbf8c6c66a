"""clone-module: copy another instance of this host (its data and state) into this one.

The source is exported under its own action lock while it keeps running, then imported
here as import-module does. The runner takes both locks, in a fixed order.
"""

from mailctl.backup import ArchiveError, clone_instance
from mailctl.settings import Instance


def other_instances(instance, data):
    """The source instance, locked with this one (only if it exists: no empty state dir is made)."""
    source = Instance(name=data["source"], state_root=instance.state_root, engine=instance.engine)
    return [source] if source.name != instance.name and source.db_path.exists() else []


def run(ctx, data):
    try:
        clone_instance(ctx.instance, ctx.store, data["source"], data.get("replace", False), ctx.engine)
    except ArchiveError as exc:
        ctx.reject(exc.field, exc.error, data.get(exc.field), str(exc))
    return {}
