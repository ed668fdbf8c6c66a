"""Export archives without containers: choosing a snapshot, checking an archive, file modes."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import time

import pytest

from mailctl import backup
from mailctl.backup import ArchiveError
from mailctl.backup.archive import FORMAT, MANIFEST, write_archive
from mailctl.backup.transfer import work_root, workdir
from mailctl.backup.volumes import DERIVED_FILES, drop_members
from mailctl.state import MIGRATIONS, Store


def make_export(root, schema_version: int | None = None, manifest: dict | None = None):
    """An unpacked export in `root`: manifest, state database, one secret, one volume tar."""
    (root / "state/db").mkdir(parents=True)
    Store(root / "state/db/state.sqlite").close()
    if schema_version is not None:
        import sqlite3
        conn = sqlite3.connect(root / "state/db/state.sqlite")
        conn.execute(f"PRAGMA user_version={schema_version}")
        conn.close()
    (root / "state/secrets").mkdir()
    (root / "state/secrets/ldap-admin-password").write_text("s3cret")
    (root / "volumes").mkdir()
    with tarfile.open(root / "volumes/vmail.tar", "w"):
        pass
    data = manifest or {"format": FORMAT, "instance": "src", "volumes": ["vmail"]}
    (root / MANIFEST).write_text(json.dumps(data))
    return root


def pack(src, dest):
    with tarfile.open(dest, "w:gz") as tar:
        for item in sorted(src.iterdir()):
            tar.add(item, item.name)
    return dest


def test_resolve_backup_file_directory_and_snapshots(tmp_path):
    with pytest.raises(ArchiveError) as err:
        backup.resolve_backup(tmp_path / "missing")
    assert (err.value.field, err.value.error) == ("path", "path_not_found")
    with pytest.raises(ArchiveError) as err:
        backup.resolve_backup(tmp_path)
    assert (err.value.field, err.value.error) == ("path", "backup_not_found")

    old, new = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    os.utime(old, (time.time() - 100, time.time() - 100))
    assert backup.resolve_backup(tmp_path) == new  # the newest by default
    assert backup.resolve_backup(tmp_path, "a.tar.gz") == old
    assert backup.resolve_backup(old) == old
    for snapshot in ("nope.tar.gz", ".."):
        with pytest.raises(ArchiveError) as err:
            backup.resolve_backup(tmp_path, snapshot)
        assert (err.value.field, err.value.error) == ("snapshot", "snapshot_not_found")
    with pytest.raises(ArchiveError) as err:
        backup.resolve_backup(old, "a.tar.gz")
    assert err.value.field == "snapshot"

    unpacked = make_export(tmp_path / "unpacked")
    assert backup.resolve_backup(unpacked) == unpacked


def test_unpack_reads_an_archive_and_an_export_directory(tmp_path):
    src = make_export(tmp_path / "src")
    archive = pack(src, tmp_path / "export.tar.gz")
    for i, source in enumerate((archive, src)):
        work = tmp_path / f"work{i}"
        work.mkdir()
        manifest = backup.unpack(source, work)
        assert manifest["instance"] == "src"
        assert (work / "state/secrets/ldap-admin-password").read_text() == "s3cret"
        assert (work / "volumes/vmail.tar").is_file()


@pytest.mark.parametrize("problem", ["not_tar", "no_manifest", "bad_format", "too_new", "missing_volume",
                                     "outside_member"])
def test_unpack_refuses_what_is_not_a_usable_export(tmp_path, problem):
    src = tmp_path / "src"
    src.mkdir()
    archive = tmp_path / "export.tar.gz"
    if problem == "not_tar":
        archive.write_text("hello")
    elif problem == "outside_member":
        make_export(src)
        with tarfile.open(archive, "w:gz") as tar:  # a valid export plus a member that climbs out
            for item in sorted(src.iterdir()):
                tar.add(item, item.name)
            info = tarfile.TarInfo("../escaped")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    else:
        manifest = {"no_manifest": None, "bad_format": {"format": 99},
                    "too_new": None, "missing_volume": {"format": FORMAT, "volumes": ["vmail", "ldap"]}}
        make_export(src, len(MIGRATIONS) + 1 if problem == "too_new" else None, manifest.get(problem))
        if problem == "no_manifest":
            (src / MANIFEST).unlink()
        pack(src, archive)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(ArchiveError) as err:
        backup.unpack(archive, work)
    assert err.value.field == "path"
    assert err.value.error == ("archive_too_new" if problem == "too_new" else "invalid_archive")
    assert not (tmp_path / "escaped").exists()


def test_archive_is_written_owner_only_even_with_a_lax_umask(tmp_path):
    (tmp_path / "secret").write_text("pw")
    dest = tmp_path / "out.tar.gz"
    dest.write_text("old")  # an existing file is replaced, not reused with its mode
    os.chmod(dest, 0o644)
    old_umask = os.umask(0)
    try:
        write_archive(dest, [(tmp_path / "secret", "secret")])
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    with tarfile.open(dest) as tar:
        assert tar.getnames() == ["secret"]
    assert not list(tmp_path.glob(".*partial"))


def test_derived_caches_are_dropped_from_a_volume_tar(tmp_path):
    tar_path = tmp_path / "rspamd.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name in ("./stats.ucl", "./abc.hs", "./abc.hs.unser", "./def.hsmp", "./rspamd.rrd"):
            info = tarfile.TarInfo(name)
            info.size = 1
            info.uid, info.gid = 100, 101
            tar.addfile(info, io.BytesIO(b"x"))
    drop_members(tar_path, DERIVED_FILES["rspamd"])
    with tarfile.open(tar_path) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["./stats.ucl", "./rspamd.rrd"]
    assert {(m.uid, m.gid) for m in members} == {(100, 101)}


def test_has_data_means_configured_or_with_domains(tmp_path):
    store = Store(tmp_path / "state.sqlite")
    assert not backup.has_data(store)
    store.conn.execute("INSERT INTO domains(domain) VALUES('example.org')")
    assert backup.has_data(store)
    store.conn.execute("DELETE FROM domains")
    store.set("configured", True)
    assert backup.has_data(store)


def test_a_killed_import_leaves_its_work_dir_to_the_next_one(tmp_path):
    """workdir cannot clean up after SIGKILL; the next export/import/clone of the same
    instance (same lock) does, and never touches another instance's directories."""
    from mailctl.settings import Instance

    mine, other = Instance("i1", state_root=tmp_path), Instance("i1-b", state_root=tmp_path)
    stale = work_root(mine) / "import-killed"
    (stale / "volumes").mkdir(parents=True)
    (stale / "volumes/vmail.tar").write_bytes(b"x" * 10)
    others = work_root(other) / "import-running"
    others.mkdir(parents=True)
    with workdir(mine, "import") as work:
        assert not stale.exists() and work.parent == work_root(mine)
        assert stat.S_IMODE(work.stat().st_mode) == 0o700
    assert not work.exists() and others.is_dir()
