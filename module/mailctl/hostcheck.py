"""Facts about this host that container specs must respect.

runc refuses a container whose rlimits exceed the host's hard limits, and the
engines' defaults (nofile 1048576) do on hosts like ours, so every container is
given explicit limits derived from the host. Dovecot raises its process limit at
start and needs nproc 8192; runc wants nofile in the same call.
"""

from __future__ import annotations

import resource

DOVECOT_NPROC = 8192


def container_ulimits() -> tuple[tuple[str, int, int], ...]:
    """(name, soft, hard) limits for every container, capped by the host's hard limits."""
    _, nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    _, nproc_hard = resource.getrlimit(resource.RLIMIT_NPROC)
    nofile = 65536 if nofile_hard == resource.RLIM_INFINITY else min(nofile_hard, 65536)
    nproc = DOVECOT_NPROC if nproc_hard == resource.RLIM_INFINITY else min(nproc_hard, DOVECOT_NPROC)
    return (("nofile", nofile, nofile), ("nproc", nproc, nproc))
