"""create-module: state, secrets, certificate, volumes and rendered configuration of the
instance, after checking its images; `mailctl up` then starts it (mailctl/provision.py)."""

from mailctl.provision import create_instance


def run(ctx, data):
    create_instance(ctx.instance, ctx.store, ctx.engine)
    ctx.force_apply = True  # render the configuration now, even though the state did not change
    return {}
