"""Mailbox settings without containers: merging, quota views, rendered files, master secret."""

from __future__ import annotations

import stat
from pathlib import Path

from passlib.hash import sha512_crypt

from mailctl.context import render_context
from mailctl.engines.podman import _unframe
from mailctl.mailboxes import _clone_rows, forward_status, merge_settings, quota_status, spam_retention_status
from mailctl.render import ConfigTree
from mailctl.secrets import ensure_secrets, sha512_crypt_hash
from mailctl.settings import Instance
from mailctl.state import DEFAULT_SETTINGS, Store


def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db" / "state.sqlite")


def test_merge_keeps_omitted_fields_and_disabled_texts(tmp_path):
    s = store(tmp_path)
    merged = merge_settings(s, {"quota": {"limit": 100}, "spam_prefix": {"enabled": False}})
    assert merged["quota"] == {"limit": 100}
    assert merged["spam_prefix"] == DEFAULT_SETTINGS["mailbox_settings"]["spam_prefix"]
    assert merged["spam_folder"] == {"enabled": True, "name": "Junk"}


def test_quota_and_retention_views():
    row = {"quota_custom": True, "quota_limit": 2, "spam_custom": False, "spam_retention": 0,
           "forward": [{"dtype": "user", "name": "gone"}, {"dtype": "external", "name": "a@b.example"}],
           "keepcopy": True}
    assert quota_status(row, 100, 1024) == {"limit": 2, "custom": True, "value": 1, "percent": 50.0}
    assert quota_status({**row, "quota_custom": False}, 0, None) == {"limit": 0, "custom": False}
    assert spam_retention_status(row, 15) == {"value": 15, "custom": False}
    assert forward_status(row, {"john"}, set()) == {
        "destinations": [{"dtype": "apo", "name": "gone"}, {"dtype": "external", "name": "a@b.example"}],
        "keepcopy": True}


def test_spam_settings_render_into_dovecot_and_rspamd(tmp_path):
    s = store(tmp_path)
    with s.transaction():
        s.set("mailbox_settings", merge_settings(s, {"spam_folder": {"enabled": True, "name": "Spam"},
                                                     "spam_prefix": {"enabled": True, "prefix": "[SPAM]"},
                                                     "spam_retention": {"value": 30}}))
    staged = ConfigTree(tmp_path / "config").stage(render_context(s))
    sieve = (staged / "dovecot/sieve/spam-folder.sieve").read_text()
    assert 'header :is "X-Spam" "Yes"' in sieve and 'fileinto :create "Spam"' in sieve
    assert 'mailbox "Spam" {' in (staged / "dovecot/dovecot.conf").read_text()
    env = (staged / "dovecot/spam-retention.env").read_text()
    assert "SPAM_FOLDER='Spam'" in env and "DEFAULT_DAYS=30" in env
    actions = (staged / "rspamd/local.d/actions.conf").read_text()
    assert 'subject = "[SPAM] %s";' in actions and "rewrite_subject = 6;" in actions


def test_vmail_master_secret(tmp_path):
    instance = Instance("unit1", state_root=tmp_path)
    ensure_secrets(instance)
    password = (instance.secrets_dir / "vmail-master-password").read_text()
    line = (instance.secrets_dir / "dovecot-master-users").read_text()
    assert stat.S_IMODE((instance.secrets_dir / "dovecot-master-users").stat().st_mode) == 0o600
    name, _, hashed = line.strip().partition(":")
    assert name == "vmail" and password not in line
    assert hashed.startswith("{SHA512-CRYPT}$6$")
    assert sha512_crypt.verify(password, hashed.removeprefix("{SHA512-CRYPT}"))
    assert sha512_crypt_hash("x") != sha512_crypt_hash("x"), "salted"
    # A master file of the older {SSHA512} scheme is hashed again, same password.
    (instance.secrets_dir / "dovecot-master-users").write_text("vmail:{SSHA512}abc\n")
    ensure_secrets(instance)
    upgraded = (instance.secrets_dir / "dovecot-master-users").read_text().strip().partition(":")[2]
    assert sha512_crypt.verify(password, upgraded.removeprefix("{SHA512-CRYPT}"))


def test_unframe_exec_output():
    framed = b"\x01\x00\x00\x00\x00\x00\x00\x03abc" + b"\x02\x00\x00\x00\x00\x00\x00\x02de"
    assert _unframe(framed) == b"abcde"
    assert _unframe(b"plain output\n") == b"plain output\n"


def test_quota_clone_rows_in_kib_and_nothing_from_bad_output():
    out = '[{"username":"ann","bytes":2048},{"username":"bob","bytes":1023},{"username":"eve","bytes":null}]'
    assert _clone_rows(out) == {"ann": 2, "bob": 0}  # KiB, as doveadm's STORAGE value
    assert _clone_rows("") == {}  # sqlite3 -json prints nothing for an empty table
    assert _clone_rows("Error: no such container") == {}
