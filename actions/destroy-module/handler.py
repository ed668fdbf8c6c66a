"""destroy-module: remove the instance's containers and network; with purge, its volumes
and state directory too (all mail is lost). Without purge, `mailctl up` brings it back."""

from mailctl import lifecycle


def run(ctx, data):
    lifecycle.down(ctx.instance, purge=bool(data.get("purge")), progress=lambda _: None)
    return {}
