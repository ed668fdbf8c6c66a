"""install-module's pure parts: the images label, the tag, the units written per instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailctl.errors import MailError
from mailctl.moduleimage import _write_units, daemon_images, image_tag
from mailctl.settings import Instance

ROOT = Path(__file__).resolve().parents[2]


def test_images_label_names_each_daemon():
    images = daemon_images({"org.nethserver.images": "localhost/mail-redis:1.2 localhost/mail-postfix:1.2"})
    assert images == {"redis": "localhost/mail-redis:1.2", "postfix": "localhost/mail-postfix:1.2"}
    assert image_tag(images) == "1.2"


@pytest.mark.parametrize("label", ["", "localhost/other:1", "localhost/mail-redis"])
def test_a_foreign_image_is_refused(label):
    with pytest.raises(MailError):
        daemon_images({"org.nethserver.images": label})


def test_images_of_different_tags_are_refused():
    with pytest.raises(MailError, match="different tags"):
        image_tag({"redis": "localhost/mail-redis:1", "postfix": "localhost/mail-postfix:2"})


def test_units_run_the_installed_runtime(tmp_path):
    root = tmp_path / "module"
    shutil.copytree(ROOT / "imageroot/systemd", root / "imageroot/systemd")
    instance = Instance(name="m7", state_root=tmp_path)
    mailctl, env = root / "venv/bin/mailctl", root / "env"
    names = _write_units(instance, root, tmp_path / "units", mailctl, env)
    assert names == ["mailctl-m7.service", "mailctl-m7-agent.service", "mailctl-m7-web.service",
                     "mailctl-m7-watch.service"]
    main = (tmp_path / "units/mailctl-m7.service").read_text()
    agent = (tmp_path / "units/mailctl-m7-agent.service").read_text()
    assert f"ExecStart={mailctl} up" in main and f"ExecStop={mailctl} down" in main
    assert f"EnvironmentFile={env}" in main and f"EnvironmentFile={env}" in agent
    assert "Requires=mailctl-m7.service" in agent and "%i" not in main + agent
    web = (tmp_path / "units/mailctl-m7-web.service").read_text()
    assert f"ExecStart={mailctl} serve" in web and "Wants=mailctl-m7.service" in web and "%i" not in web
    watch = (tmp_path / "units/mailctl-m7-watch.service").read_text()
    assert f"ExecStart={mailctl} watch" in watch and "Requires=mailctl-m7.service" in watch
