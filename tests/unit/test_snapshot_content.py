"""The pure parts of seek-snapshot-contents / restore-backup-content: folder names on disk,
which members of the vmail tar make up a folder, where they go, the repository of a request."""

import pytest

from mailctl.snapshotcontent import (
    ContentError,
    FolderSelection,
    decode_mutf7,
    destination_root,
    encode_mutf7,
    folders_of,
    resolve_source,
)

VOLUME = [
    "./", "./alice/", "./alice/Maildir/", "./alice/Maildir/cur/", "./alice/Maildir/new/", "./alice/Maildir/tmp/",
    "./alice/Maildir/.Sent/", "./alice/Maildir/.Sent/cur/",
    "./alice/Maildir/.Sent Items/", "./alice/Maildir/.Sent Items/cur/",
    "./alice/Maildir/.Lists/", "./alice/Maildir/.Lists.Samba/", "./alice/Maildir/.Lists.Samba/cur/",
    "./alice/Maildir/.Lists.Caf&AOk-/", "./alice/Maildir/.Lists.Caf&AOk-/cur/",
    "./alice/sieve/", "./bob/Maildir/cur/", "./bob/Maildir/.Trash/cur/",
    "./.public/", "./.public/cur/", "./.public/sales/", "./.public/sales/cur/", "./.public/sales/2024/cur/",
]


@pytest.mark.parametrize("text, encoded", [("INBOX", "INBOX"), ("Café", "Caf&AOk-"), ("A&B", "A&-B"),
                                           ("日本語", "&ZeVnLIqe-"), ("Sub é", "Sub &AOk-")])
def test_modified_utf7_both_ways(text, encoded):
    assert encode_mutf7(text) == encoded
    assert decode_mutf7(encoded) == text


def test_folders_of_a_user_and_of_the_public_mailboxes_owner():
    assert folders_of("alice", VOLUME) == ["INBOX", "Lists/Café", "Lists/Samba", "Sent", "Sent Items"]
    assert folders_of("bob", VOLUME) == ["INBOX", "Trash"]
    assert folders_of("vmail", VOLUME) == ["sales", "sales/2024"]
    assert folders_of("carol", VOLUME) == []


def test_a_folder_and_its_subfolders_are_selected_and_renamed_to_their_last_name():
    sel = FolderSelection("alice", "Lists")
    assert sel.target("./alice/Maildir/.Lists.Samba/cur/1.M1,S=10:2,S") == ".Lists.Samba/cur/1.M1,S=10:2,S"
    sel = FolderSelection("alice", "Lists/Samba")
    assert sel.base == "Samba"
    assert sel.target("./alice/Maildir/.Lists.Samba/cur/1:2,S") == ".Samba/cur/1:2,S"
    assert sel.target("./alice/Maildir/.Lists.Samba.Old/new/2") == ".Samba.Old/new/2"
    assert sel.target("./alice/Maildir/.Lists.Samba/dovecot-keywords") == ".Samba/dovecot-keywords"
    assert sel.target("./alice/Maildir/.Lists.Samba/dovecot.index.cache") is None  # Dovecot remakes it
    assert sel.target("./alice/Maildir/.Lists.Samba/tmp/3") is None
    assert sel.target("./alice/Maildir/.Lists.Samba/tmp/") == ".Samba/tmp"  # Dovecot wants the directory
    assert sel.target("./alice/Maildir/.Lists.SambaX/cur/4") is None
    assert sel.target("./bob/Maildir/.Lists.Samba/cur/5") is None
    assert FolderSelection("alice", "Sent").target("./alice/Maildir/.Sent Items/cur/6") is None
    assert FolderSelection("alice", "Lists/Café").target("./alice/Maildir/.Lists.Caf&AOk-/cur/7") == ".Caf&AOk-/cur/7"


def test_inbox_is_the_maildir_root():
    sel = FolderSelection("alice", "INBOX")
    assert sel.target("./alice/Maildir/cur/1") == "cur/1"
    assert sel.target("./alice/Maildir/new/2") == "new/2"
    assert sel.target("./alice/Maildir/tmp/") == "tmp" and sel.target("./alice/Maildir/tmp/9") is None
    assert sel.target("./alice/Maildir/.INBOX.old/cur/3") == ".INBOX.old/cur/3"
    assert sel.target("./alice/Maildir/.Sent/cur/4") is None
    assert sel.target("./alice/Maildir/dovecot.index") is None


def test_public_mailboxes_are_a_fs_layout_restored_beside_themselves():
    sel = FolderSelection("vmail", "sales/2024")
    assert sel.layout == ":LAYOUT=fs"
    assert sel.target("./.public/sales/2024/cur/1") == "2024/cur/1"
    assert sel.target("./.public/sales/2024/q1/cur/2") == "2024/q1/cur/2"
    assert sel.target("./.public/sales/cur/3") is None
    assert destination_root("vmail", "sales/2024") == "sales/2024/Restored folder"
    assert destination_root("alice", "Lists/Samba") == "Restored folder"


def test_repository_of_a_request(monkeypatch):
    monkeypatch.delenv("MAIL_AGENT_REDIS", raising=False)
    assert resolve_source({"repository": "/backups/repo", "destination": "x"}).repository == "/backups/repo"
    with pytest.raises(ContentError) as refused:  # NS8's fields need the cluster's Redis (the agent's)
        resolve_source({"destination": "14030a59", "repopath": "mail/x"})
    assert refused.value.field == "destination"
