"""Module life cycle actions on real instances: get-facts, create-module, export and
import-module into another instance, restore-module with replace, clone-module and
destroy-module with and without purge.

A second instance (MAIL_TEST_INSTANCE2, default tm2, ports MAIL_TEST_OFFSET2, default the
shared instance's offset + 500; both with the run's MAIL_TEST_PREFIX / MAIL_TEST_OFFSET_DELTA)
receives what the shared one exports. The tests of this file run in order: each one leaves
the second instance as the next one expects it.
"""

from __future__ import annotations

import imaplib
import os
import smtplib
import stat
import tarfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest
from conftest import TEST_OFFSET, TEST_OFFSET_DELTA, TEST_PREFIX, Cli, _engine_leftovers
from protocol import HOST, insecure_tls

pytestmark = pytest.mark.containers

OTHER = TEST_PREFIX + os.environ.get("MAIL_TEST_INSTANCE2", "tm2")
OTHER_OFFSET = int(os.environ.get("MAIL_TEST_OFFSET2", str(TEST_OFFSET + 500))) + TEST_OFFSET_DELTA
DOMAIN = "example.org"
USER, ALIAS = "lcuser", "lcsales"
PASSWORD = "Lifecycle-pass1"
SUBJECT = f"carried over {uuid.uuid4().hex[:8]}"


def podman_names(*args: str) -> list[str]:
    import subprocess

    return subprocess.run(["podman", *args], capture_output=True, text=True, check=True).stdout.split()


def inbox_count(cli, subject: str) -> int:
    """Messages with `subject` in the user's INBOX, over IMAPS with the user's password."""
    conn = imaplib.IMAP4_SSL(HOST, cli.port(993), ssl_context=insecure_tls(), timeout=15)
    try:
        conn.login(USER, PASSWORD)
        conn.select("INBOX", readonly=True)
        _, found = conn.search(None, "SUBJECT", f'"{subject}"')
        return len(found[0].split())
    finally:
        conn.logout()


def wait_for_message(cli, subject: str, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if inbox_count(cli, subject):
            return True
        time.sleep(0.3)
    return False


@pytest.fixture(scope="module")
def source(mail):
    """The shared instance with this file's user, an address of it and one delivered message."""
    mail.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": DOMAIN})
    mail.run("add-user", {"user": USER, "password": PASSWORD})
    mail.run("add-address", {"local": ALIAS, "atype": "domain", "domain": DOMAIN,
                             "destinations": [{"dtype": "user", "name": USER}]})
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "someone@example.net", f"{ALIAS}@{DOMAIN}", SUBJECT
    msg.set_content("This message must survive the move.\n")
    with smtplib.SMTP(HOST, mail.port(25), timeout=30) as s:
        s.ehlo("client.example.net")
        s.send_message(msg)
    assert wait_for_message(mail, SUBJECT), "the message was not delivered on the source"
    yield mail
    mail.run("remove-address", {"local": ALIAS, "atype": "domain", "domain": DOMAIN}, expect=None)
    mail.run("remove-user", {"user": USER}, expect=None)


@pytest.fixture(scope="module")
def other(mail):
    """The second instance, not started: create-module and the imports make it. It shares
    the state root of the shared instance, as clone-module needs (one root per host)."""
    _engine_leftovers(OTHER)
    cli = Cli(OTHER, mail.state_dir, OTHER_OFFSET)
    yield cli
    cli("down", "--purge")
    _engine_leftovers(OTHER)


@pytest.fixture(scope="module")
def archive(source, tmp_path_factory) -> Path:
    """`mailctl export` of the shared instance (it keeps running)."""
    path = tmp_path_factory.mktemp("exports") / "source.tar.gz"
    r = source("export", "--to", str(path))
    assert r.code == 0, r.stderr
    return path


def test_get_facts_counts_domains_users_addresses_and_features(mail):
    before = mail.run("get-facts", "")
    mail.run("add-domain", {"domain": "facts.example.net"})
    mail.run("add-user", {"user": "lcfacts", "password": PASSWORD})
    mail.run("add-address", {"local": "info", "atype": "domain", "domain": "facts.example.net",
                             "destinations": [{"dtype": "user", "name": "lcfacts"}]})
    mail.run("set-domain-dkim", {"domain": "facts.example.net", "enabled": True})
    try:
        after = mail.run("get-facts")
        assert after["domains"] == before["domains"] + 1
        assert after["user_mailboxes"] == before["user_mailboxes"] + 1
        assert after["addresses"] == before["addresses"] + 1
        assert after["features"]["dkim_domains"] == before["features"]["dkim_domains"] + 1
        assert after["features"]["external_user_domain"] is False
        assert after["features"]["user_domain_schema"] == "rfc2307"
        # anonymous: no names at all
        assert "facts.example.net" not in str(after) and "lcfacts" not in str(after)
    finally:
        mail.run("remove-domain", {"domain": "facts.example.net"}, expect=None)
        mail.run("remove-user", {"user": "lcfacts"}, expect=None)
    assert mail.run("get-facts")["domains"] == before["domains"]
    mail.run("get-facts", {"extra": 1}, expect=10)  # no input accepted


def test_export_is_private_and_holds_state_and_volumes_but_not_config(archive):
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"manifest.json", "state/db/state.sqlite", "state/secrets/ldap-admin-password",
            "state/tls/cert.pem"} <= names
    assert {f"volumes/{v}.tar" for v in ("vmail", "queue", "ldap", "rspamd", "redis")} <= names
    assert not any(n.startswith(("config", "state/config")) for n in names)


def test_create_module_prepares_an_instance_that_is_not_running(other):
    assert other.run("create-module", "") == {}
    state = other.state_dir / OTHER
    assert (state / "db/state.sqlite").is_file() and (state / "tls/cert.pem").is_file()
    assert (state / "config/current/postfix/main.cf").is_file()
    assert stat.S_IMODE((state / "secrets").stat().st_mode) == 0o700
    assert {f"{OTHER}-vmail", f"{OTHER}-ldap"} <= set(podman_names("volume", "ls", "-q", "--filter",
                                                                   f"label=mail.instance={OTHER}"))
    assert podman_names("ps", "-aq", "--filter", f"label=mail.instance={OTHER}") == []


def test_import_into_another_instance_then_the_user_reads_the_message(source, other, archive):
    assert other.run("import-module", {"path": str(archive)}) == {}
    secret = other.state_dir / OTHER / "secrets" / "ldap-admin-password"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    r = other("up", timeout=300)
    assert r.code == 0, r.stderr
    assert inbox_count(other, SUBJECT) == 1  # same password, same message
    assert DOMAIN in [d["domain"] for d in other.run("list-domains")]
    addresses = other.run("list-addresses")["addresses"]
    assert any(a["local"] == ALIAS and a.get("domain") == DOMAIN for a in addresses)
    assert USER in [u["user"] for u in other.run("list-users")["users"]]
    # the new instance receives mail for the imported address
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "someone@example.net", f"{ALIAS}@{DOMAIN}", f"{SUBJECT} again"
    msg.set_content("Delivered after the move.\n")
    with smtplib.SMTP(HOST, other.port(25), timeout=30) as s:
        s.send_message(msg)
    assert wait_for_message(other, f"{SUBJECT} again")
    assert inbox_count(source, SUBJECT) == 1  # the source is untouched


def test_import_and_clone_refuse_bad_input(source, other, tmp_path):
    def error(action, data):
        r = other.run(action, data, expect=10)
        return r.json()[0]["field"], r.json()[0]["error"]

    assert error("import-module", {"path": str(tmp_path / "missing.tar.gz")}) == ("path", "path_not_found")
    junk = tmp_path / "junk.tar.gz"
    junk.write_text("not an archive")
    assert error("import-module", {"path": str(junk), "replace": True}) == ("path", "invalid_archive")
    assert error("import-module", {"path": "relative.tar.gz"})[0] == "path"
    (tmp_path / "empty").mkdir()
    assert error("restore-module", {"path": str(tmp_path / "empty")}) == ("path", "backup_not_found")
    assert error("clone-module", {"source": OTHER}) == ("source", "same_instance")
    assert error("clone-module", {"source": "nosuch9"}) == ("source", "instance_not_found")
    assert error("clone-module", {"source": source.instance}) == ("replace", "instance_not_empty")


def test_restore_with_replace_on_a_running_instance(other, archive):
    other.run("add-domain", {"domain": "later.example.net"})
    r = other.run("restore-module", {"path": str(archive.parent)}, expect=10)
    assert r.json()[0]["field"] == "replace"
    assert "later.example.net" in [d["domain"] for d in other.run("list-domains")]  # nothing changed

    assert other.run("restore-module", {"path": str(archive.parent), "snapshot": archive.name,
                                        "replace": True}) == {}
    assert "later.example.net" not in [d["domain"] for d in other.run("list-domains")]
    health = {row["daemon"]: row["health"] for row in other("status", "--json").json()}
    assert set(health.values()) == {"healthy"}, health  # started again
    assert inbox_count(other, SUBJECT) == 1
    assert inbox_count(other, f"{SUBJECT} again") == 0  # arrived after the backup


def test_destroy_module_keeps_data_then_clone_then_purge(source, other, archive):
    volumes = set(podman_names("volume", "ls", "-q", "--filter", f"label=mail.instance={OTHER}"))
    assert other.run("destroy-module", {}) == {}
    assert podman_names("ps", "-aq", "--filter", f"label=mail.instance={OTHER}") == []
    assert set(podman_names("volume", "ls", "-q", "--filter", f"label=mail.instance={OTHER}")) == volumes
    assert other.db_path.is_file()

    # clone-module copies the running shared instance into the stopped one
    other.run("add-domain", {"domain": "later.example.net"})
    assert other.run("clone-module", {"source": source.instance, "replace": True}) == {}
    assert podman_names("ps", "-aq", "--filter", f"label=mail.instance={OTHER}") == []  # still down
    domains = [d["domain"] for d in other.run("list-domains")]
    assert DOMAIN in domains and "later.example.net" not in domains

    # `mailctl import` is import-module from the command line
    r = other("import", "--from", str(archive))
    assert r.code == 10 and r.json()[0]["field"] == "replace"
    r = other("import", "--from", str(archive), "--replace")
    assert r.code == 0, r.stderr

    assert other.run("destroy-module", {"purge": True}) == {}
    assert podman_names("volume", "ls", "-q", "--filter", f"label=mail.instance={OTHER}") == []
    assert not (other.state_dir / OTHER).exists()


@pytest.mark.docker
def test_docker_engine_copies_volume_content_with_owners(tmp_path):
    """The Docker adapter has no native volume export: a throw-away container runs tar."""
    import subprocess

    from mailctl.engines import get_engine
    from mailctl.engines.base import EngineError
    from mailctl.settings import Instance
    from mailctl.stack import Mount

    try:
        engine = get_engine("docker")
    except EngineError as exc:
        pytest.skip(str(exc))
    image = next((Instance(OTHER).image(d) for d in ("redis", "postfix", "dovecot")
                  if engine.image_exists(Instance(OTHER).image(d))), None)
    if image is None:
        pytest.skip("no mail image built for Docker (./build-images.sh --docker)")
    labels = {"mail.instance": f"{OTHER}-dk"}
    first, second = f"{OTHER}-dk-a", f"{OTHER}-dk-b"
    try:
        engine.ensure_volume(first, labels)
        code, out = engine.run_once(image, ["sh", "-c", "echo kept > /v/mail && mkdir /v/d && chown 100:101 /v/d"],
                                    (Mount(first, "/v", kind="volume"),))
        assert code == 0, out
        engine.export_volume(first, tmp_path / "a.tar", image)
        engine.import_volume(second, tmp_path / "a.tar", labels, image)
        engine.export_volume(second, tmp_path / "b.tar", image)
        listing = subprocess.run(["tar", "-tvf", str(tmp_path / "b.tar")], capture_output=True, text=True).stdout
        assert "./mail" in listing and "100/101" in listing
    finally:
        engine.remove_volume(first)
        engine.remove_volume(second)
