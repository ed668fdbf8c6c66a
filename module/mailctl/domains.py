"""Rules shared by add-domain and alter-domain."""

from __future__ import annotations

from typing import Any


def check_domain_fields(ctx, domain: dict[str, Any]) -> None:
    """A catch-all only makes sense when unknown names are not user mailboxes."""
    if domain.get("catchall") and domain.get("addusers"):
        ctx.reject("catchall", "catchall_requires_addusers_off", domain["catchall"],
                   "a catch-all mailbox can be set only when addusers is off")
    dest = domain.get("catchall")
    if dest and dest["dtype"] == "external":
        ctx.reject("catchall.dtype", "catchall_external_not_allowed", dest["dtype"],
                   "a catch-all must be a user, group or public mailbox")
