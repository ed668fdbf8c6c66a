"""Crafted exports: links, hard links, devices and size bombs never reach the host."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest
from test_backup import make_export, pack

from mailctl import backup
from mailctl.backup import ArchiveError, statefiles
from mailctl.backup import archive as archive_module
from mailctl.errors import MailError


@pytest.fixture
def victim(tmp_path):
    """A host directory an attacker would like the import to chmod or write into."""
    target = tmp_path / "victim"
    target.mkdir()
    (target / "passwd").write_text("root:x:0:0\n")
    os.chmod(target / "passwd", 0o644)
    return target


def _unpack(source, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(ArchiveError) as err:
        backup.unpack(source, work)
    return err.value, work


@pytest.mark.parametrize("craft", ["dir_symlink", "file_symlink", "hardlink", "fifo"])
def test_directory_import_refuses_links_and_special_files(tmp_path, victim, craft):
    src = make_export(tmp_path / "src")
    secrets = src / "state/secrets"
    if craft == "dir_symlink":  # state/secrets -> /etc
        for f in secrets.iterdir():
            f.unlink()
        secrets.rmdir()
        secrets.symlink_to(victim)
    elif craft == "file_symlink":
        (secrets / "dkim").symlink_to(victim / "passwd")
    elif craft == "hardlink":
        os.link(victim / "passwd", secrets / "copy")
    else:
        os.mkfifo(secrets / "pipe")
    err, work = _unpack(src, tmp_path)
    assert (err.field, err.error) == ("path", "invalid_archive")
    assert stat.S_IMODE((victim / "passwd").stat().st_mode) == 0o644
    assert not (work / "state").exists()  # checked before anything was copied


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE])
def test_archive_import_refuses_links_and_special_files(tmp_path, kind):
    src = make_export(tmp_path / "src")
    archive = tmp_path / "export.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for item in sorted(src.iterdir()):
            tar.add(item, item.name)
        member = tarfile.TarInfo("state/secrets/extra")
        member.type = kind
        member.linkname = "state/secrets/ldap-admin-password"  # inside the export: the data filter allows it
        tar.addfile(member)
    err, work = _unpack(archive, tmp_path)
    assert (err.field, err.error) == ("path", "invalid_archive")
    assert not (work / "state").exists()


def test_import_size_is_capped_before_anything_is_written(tmp_path, monkeypatch):
    src = make_export(tmp_path / "src")
    (src / "volumes/vmail.tar").unlink()
    with tarfile.open(src / "volumes/vmail.tar", "w") as tar:  # 64 KiB of zeros: compresses to almost nothing
        info = tarfile.TarInfo("big")
        info.size = 65536
        tar.addfile(info, io.BytesIO(bytes(65536)))
    archive = pack(src, tmp_path / "export.tar.gz")
    assert archive.stat().st_size < 10000
    monkeypatch.setattr(archive_module, "MAX_IMPORT_BYTES", 32768)
    for i, source in enumerate((archive, src)):
        work = tmp_path / f"work{i}"
        work.mkdir()
        with pytest.raises(ArchiveError) as err:
            backup.unpack(source, work)
        assert (err.value.field, err.value.error) == ("path", "archive_too_big")
        assert list(work.iterdir()) == []
    monkeypatch.setattr(archive_module, "MAX_IMPORT_BYTES", 10 * 2**20)
    work = tmp_path / "work-ok"
    work.mkdir()
    assert backup.unpack(archive, work)["instance"] == "src"


def test_hardening_modes_never_follows_links(tmp_path, victim):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "ok").write_text("x")
    (secrets / "link").symlink_to(victim / "passwd")
    with pytest.raises(MailError):
        statefiles._harden_secrets(secrets)
    assert stat.S_IMODE((victim / "passwd").stat().st_mode) == 0o644
    linked = tmp_path / "linked-secrets"
    linked.symlink_to(victim)
    with pytest.raises(MailError):
        statefiles._harden_secrets(linked)
    assert stat.S_IMODE(victim.stat().st_mode) != 0o700


def test_a_clean_directory_export_is_copied_with_private_modes(tmp_path):
    src = make_export(tmp_path / "src")
    os.chmod(src / "state/secrets/ldap-admin-password", 0o644)
    work = tmp_path / "work"
    work.mkdir()
    assert backup.unpack(src, work)["instance"] == "src"
    copied = work / "state/secrets/ldap-admin-password"
    assert copied.read_text() == "s3cret"
    assert stat.S_IMODE(copied.stat().st_mode) == 0o600
