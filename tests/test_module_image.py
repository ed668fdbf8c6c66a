"""The module image for a software center, on a real host: build-images.sh --save writes the
archive, `podman load` brings it in, `mailctl install-module` installs an instance from it
on a clean state directory, the instance delivers mail over SMTP that is read over IMAP,
and `mailctl remove-module` leaves nothing of it behind.

Every mailctl call runs with MAIL_PROJECT_ROOT pointing nowhere: the instance works only
with the actions, templates and runtime that came out of the image, as on a host without
this source tree.
"""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ROOT, TEST_OFFSET_DELTA, TEST_PREFIX, Cli, _engine_leftovers
from protocol import HOST, imaps, message, token, wait_for

pytestmark = pytest.mark.containers

TAG = os.environ.get("MAIL_IMAGE_TAG") or (ROOT / "VERSION").read_text().strip()
MODULE_IMAGE = f"localhost/mail:{TAG}"
DAEMONS = ("redis", "openldap", "clamav", "rspamd", "dovecot", "postfix")
NAME = TEST_PREFIX + "mi1"
OFFSET = int(os.environ.get("MAIL_TEST_MODULE_OFFSET", "23200")) + TEST_OFFSET_DELTA
DOMAIN, USER, PASSWORD = "example.org", "mod.user", "Module-pass1"


def _podman(*args: str) -> str:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def archive():
    """The archive written by `build-images.sh --save` (daemon images are reused from the cache)."""
    out = Path(tempfile.mkdtemp(prefix="mail-archive-"))
    started = time.monotonic()
    p = subprocess.run([str(ROOT / "build-images.sh"), "--save", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    print(f"build-images.sh --save: {time.monotonic() - started:.1f}s")
    yield out / f"mail-{TAG}.tar"
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="module")
def host():
    """A clean state directory and unit directory; whatever a failed run left is removed."""
    state = Path(tempfile.mkdtemp(prefix="mail-module-state-"))
    units = Path(tempfile.mkdtemp(prefix="mail-module-units-"))
    _engine_leftovers(NAME)
    cli = Cli(NAME, state, OFFSET, extra_env={"MAIL_PROJECT_ROOT": "/nonexistent", "MAIL_UNIT_DIR": str(units)})
    yield cli, units
    _engine_leftovers(NAME)
    shutil.rmtree(state, ignore_errors=True)
    shutil.rmtree(units, ignore_errors=True)


def test_archive_holds_the_module_image_with_ns8_labels(archive):
    started = time.monotonic()
    loaded = _podman("load", "-i", str(archive))
    print(f"podman load: {time.monotonic() - started:.1f}s, archive {archive.stat().st_size / 2**20:.0f} MiB")
    expected = [MODULE_IMAGE] + [f"localhost/mail-{d}:{TAG}" for d in DAEMONS]
    for image in expected:
        assert f"Loaded image: {image}" in loaded, loaded
    labels = json.loads(_podman("image", "inspect", "--format", "{{json .Labels}}", MODULE_IMAGE))
    assert labels["org.nethserver.images"].split() == expected[1:]
    assert labels["org.nethserver.rootfull"] == "1"
    assert int(labels["org.nethserver.tcp-ports-demand"]) >= 0
    assert "cluster:accountconsumer" in labels["org.nethserver.authorizations"].split()


def test_install_up_deliver_and_remove(archive, host):
    cli, units = host
    state_dir = cli.state_dir / NAME

    started = time.monotonic()
    r = cli("install-module", MODULE_IMAGE)
    assert r.code == 0, r.stderr
    print(f"install-module: {time.monotonic() - started:.1f}s")
    unit_files = sorted(p.name for p in units.iterdir())
    assert unit_files == [f"mailctl-{NAME}-agent.service", f"mailctl-{NAME}-watch.service",
                          f"mailctl-{NAME}-web.service", f"mailctl-{NAME}.service"]
    module = state_dir / "module"
    assert (module / "ui-manifest.json").is_file() and (module / "imageroot/templates").is_dir()
    # The admin UI's files, as in the tree (they land in the image's /ui).
    static = ROOT / "module/mailctl/web/static"
    assert sorted(p.relative_to(module / "ui") for p in (module / "ui").rglob("*") if p.is_file()) == \
        sorted(p.relative_to(static) for p in static.rglob("*") if p.is_file())
    assert f"ExecStart={module}/venv/bin/mailctl up" in (units / f"mailctl-{NAME}.service").read_text()
    # A second install of the same name is refused and changes nothing.
    again = cli("install-module", MODULE_IMAGE)
    assert again.code != 0 and "already installed" in again.stderr
    assert (module / "installed.json").is_file()

    started = time.monotonic()
    r = cli("up", timeout=300)
    assert r.code == 0, r.stderr
    print(f"up: {time.monotonic() - started:.1f}s")
    running = _podman("ps", "--filter", f"label=mail.instance={NAME}", "--format", "{{.Image}}").split()
    assert sorted(running) == sorted(f"localhost/mail-{d}:{TAG}" for d in DAEMONS)

    cli.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": DOMAIN})
    cli.run("add-user", {"user": USER, "password": PASSWORD, "display_name": "Module User"})
    subject = f"from the module image {token()}"
    with smtplib.SMTP(HOST, cli.port(25), timeout=30) as s:
        s.send_message(message("someone@example.net", f"{USER}@{DOMAIN}", subject))

    def delivered() -> bool:
        with imaps(cli, USER, PASSWORD) as imap:
            imap.select("INBOX", readonly=True)
            _, found = imap.search(None, "SUBJECT", f'"{subject}"')
            return bool(found[0].split())

    wait_for(delivered, "the message in the user's INBOX over IMAP")

    started = time.monotonic()
    r = cli("remove-module", NAME)
    assert r.code == 0, r.stderr
    print(f"remove-module: {time.monotonic() - started:.1f}s")
    label = f"label=mail.instance={NAME}"
    assert _podman("ps", "-aq", "--filter", label).split() == []
    assert _podman("volume", "ls", "-q", "--filter", label).split() == []
    assert [n for n in _podman("network", "ls", "--format", "{{.Name}}").split() if n == NAME] == []
    assert not state_dir.exists()
    assert list(units.iterdir()) == []
    # The extraction container is gone too.
    assert _podman("ps", "-aq", "--filter", "label=mail.module-extract=1").split() == []


def test_a_daemon_image_is_not_a_module_and_nothing_is_installed(host):
    cli, units = host
    r = cli("install-module", f"localhost/mail-redis:{TAG}")
    assert r.code != 0 and "org.nethserver.images" in r.stderr
    assert not (cli.state_dir / NAME).exists()
    assert list(units.iterdir()) == []
