"""create-module: make an instance ready to start, without starting it.

An instance exists from its state directory on: `create-module` (or the first action,
or `mailctl up`) makes the state database, the secrets and a self-signed certificate;
this module also checks that every image is built and creates the data volumes, so
that `mailctl up` only has to start containers. The containers, their network and the
published ports belong to `mailctl up`: they exist only while the instance runs.
"""

from __future__ import annotations

from .context import default_hostname
from .engines import Engine
from .errors import MailError
from .settings import Instance
from .stack import DAEMONS, build_stack
from .state import Store
from .tls import ensure_self_signed


def missing_images(instance: Instance, engine: Engine) -> list[str]:
    return [instance.image(d) for d in DAEMONS if not engine.image_exists(instance.image(d))]


def create_instance(instance: Instance, store: Store, engine: Engine) -> None:
    """Check the images, make the certificate and the volumes (state and secrets exist already)."""
    missing = missing_images(instance, engine)
    if missing:
        hint = "./build-images.sh" + (" --docker" if engine.name == "docker" else "")
        raise MailError(f"missing image(s) {', '.join(missing)}: run {hint}")
    hostname = store.get("hostname") or default_hostname()
    ensure_self_signed(instance.tls_dir, hostname)
    stack = build_stack(instance, hostname)
    for volume in stack.volumes:
        engine.ensure_volume(volume, stack.labels)
