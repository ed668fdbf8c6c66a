"""Move an instance's data and state: export to an archive, import an archive, clone.

An export archive is a gzip'd tar, created mode 0600 (it holds the instance's secrets):

    manifest.json             format, source instance, version, schema version, date, volumes
    state/db/state.sqlite     a consistent copy of the state database (SQLite backup API)
    state/secrets/...         passwords, DKIM keys, relay and LDAP bind credentials
    state/tls/...             the TLS certificate and key
    volumes/<purpose>.tar     the content of each data volume, owners and modes kept

The rendered configuration is not exported: it is derived from the state and rendered
again on import. Neither are the ClamAV signatures (downloaded or shipped with the image).

The export is hot: it holds the instance's action lock (so the state and the LDAP tree
do not change), asks Redis to save its data set first, and copies the mail and the queue
as they are (a message arriving during the export may be missing from the archive).

The import replaces the whole instance: it stops the containers, replaces every data
volume and the state, renders the configuration, and starts the instance again if it
was running. An archive is read and checked completely before anything is replaced; the
state files are put back if a later step fails, the volumes already replaced are not.
The actions import-module, restore-module and clone-module and the commands
`mailctl export` / `mailctl import` share this code, and so do restic backups (restic.py
backs up the directory export_to_directory writes), one module per job:

    archive.py     the archive format: manifest, writing, finding and checking an archive
    volumes.py     the data volumes: export (without derived caches) and import
    statefiles.py  the state files: a consistent database copy, the swap on import, its undo
    transfer.py    export_instance and import_archive, made of the three above
    clone.py       clone_instance: export another instance of this host, import it here
"""

from .archive import ArchiveError, resolve_backup, unpack
from .clone import clone_instance
from .transfer import ImportRequest, export_instance, has_data, import_archive

__all__ = ["ArchiveError", "ImportRequest", "clone_instance", "export_instance", "has_data", "import_archive",
           "resolve_backup", "unpack"]
