"""Install an instance from the module image, and remove it again.

The module image (`localhost/mail:<version>`, made by build-images.sh the NethServer 8
way) is a FROM-scratch image holding:

    /imageroot/actions/     the actions (schemas and handlers)
    /imageroot/templates/   the daemon configuration templates
    /imageroot/systemd/     the unit templates
    /imageroot/python/      the runtime: the mailctl wheel and the wheels it needs
    /ui/, /ui-manifest.json the admin UI and its routes

and labels naming the daemon images (`org.nethserver.images`). Installing copies that
tree into `<state>/<instance>/module/`, makes a virtual environment there from the wheels
(offline), writes the instance's environment file and systemd units. From then on every
`mailctl` command for the instance runs that runtime with those actions and templates
(`dispatch`), so an instance keeps the version it was installed with whatever mailctl
the host has. The host needs podman and Python 3.11 with venv; nothing else.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .errors import MailError
from .settings import Instance

IMAGES_LABEL = "org.nethserver.images"
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
# The unit templates of imageroot/systemd, installed once per instance under these names.
UNITS = {"mailctl@.service": "mailctl-{name}.service", "mailctl-agent@.service": "mailctl-{name}-agent.service",
         "mailctl-web@.service": "mailctl-{name}-web.service",
         "mailctl-watch@.service": "mailctl-{name}-watch.service"}
# Env vars of the instance written at install time; a caller's own value wins, except
# for the two that pin the instance to its installed code and images.
PINNED = ("MAIL_PROJECT_ROOT", "MAIL_IMAGE_TAG")


def module_dir(instance: Instance) -> Path:
    """Where the installed module (imageroot, ui, venv) of `instance` lives."""
    return instance.state_dir / "module"


def _record_path(instance: Instance) -> Path:
    return module_dir(instance) / "installed.json"


def installed_record(instance: Instance) -> dict | None:
    """What install-module wrote about `instance`, or None if it was not installed from an image."""
    try:
        return json.loads(_record_path(instance).read_text())
    except FileNotFoundError:
        return None


def _podman(*args: str, **kwargs) -> subprocess.CompletedProcess:
    try:
        p = subprocess.run(["podman", *args], capture_output=True, text=kwargs.pop("text", True), **kwargs)
    except FileNotFoundError:
        raise MailError("podman is not installed")
    if p.returncode != 0:
        err = p.stderr if isinstance(p.stderr, str) else p.stderr.decode(errors="replace")
        raise MailError(f"podman {args[0]} failed: {err.strip()}")
    return p


def image_labels(image: str) -> dict[str, str]:
    """The labels of a local image (a MailError if the image is not there)."""
    p = subprocess.run(["podman", "image", "inspect", "--format", "{{json .Labels}}", image],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise MailError(f"image {image} is not on this host: load it with 'podman load -i ARCHIVE'")
    return json.loads(p.stdout) or {}


def daemon_images(labels: dict[str, str]) -> dict[str, str]:
    """daemon -> image reference, from the org.nethserver.images label.

    >>> daemon_images({"org.nethserver.images": "localhost/mail-redis:1.0 localhost/mail-postfix:1.0"})
    {'redis': 'localhost/mail-redis:1.0', 'postfix': 'localhost/mail-postfix:1.0'}
    """
    refs = labels.get(IMAGES_LABEL, "").split()
    if not refs:
        raise MailError(f"the image has no {IMAGES_LABEL} label: not a mail module image")
    result = {}
    for ref in refs:
        name = ref.rsplit("/", 1)[-1].split(":", 1)[0]
        if not name.startswith("mail-") or ":" not in ref.rsplit("/", 1)[-1]:
            raise MailError(f"{IMAGES_LABEL}: {ref!r} is not a mail-<daemon>:<tag> image")
        result[name.removeprefix("mail-")] = ref
    return result


def image_tag(images: dict[str, str]) -> str:
    """The one tag every daemon image of the module carries (the runtime names images by tag)."""
    tags = {ref.rsplit(":", 1)[1] for ref in images.values()}
    if len(tags) != 1:
        raise MailError(f"{IMAGES_LABEL}: the daemon images have different tags {sorted(tags)}")
    return tags.pop()


def _extract(image: str, dest: Path) -> None:
    """Copy the files of `image` into `dest` (create a container, export its tree, remove it)."""
    container = _podman("create", "--label", "mail.module-extract=1", image, "/").stdout.strip()
    try:
        with tempfile.TemporaryFile() as tar:
            p = subprocess.run(["podman", "export", container], stdout=tar, stderr=subprocess.PIPE)
            if p.returncode != 0:
                raise MailError(f"podman export failed: {p.stderr.decode(errors='replace').strip()}")
            tar.seek(0)
            with tarfile.open(fileobj=tar) as archive:
                archive.extractall(dest, filter="data")
    finally:
        subprocess.run(["podman", "rm", "-f", container], capture_output=True)


def _make_venv(root: Path) -> Path:
    """A virtual environment in root/venv with the runtime from root/imageroot/python (offline)."""
    python = shutil.which("python3")
    if not python:
        raise MailError("python3 is not installed on this host")
    venv = root / "venv"
    run = lambda *cmd: subprocess.run(cmd, capture_output=True, text=True,  # noqa: E731
                                      env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    p = run(python, "-m", "venv", str(venv))
    if p.returncode != 0:
        raise MailError(f"python3 -m venv failed (is python3-venv installed?): {p.stderr.strip()}")
    p = run(str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--no-index", "--disable-pip-version-check",
            "--find-links", str(root / "imageroot/python"), "mailctl")
    if p.returncode != 0:
        raise MailError(f"installing the runtime from the image's wheels failed: {p.stderr.strip()}")
    return venv / "bin/mailctl"


def _env_lines(values: dict[str, str]) -> str:
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())


def _write_units(instance: Instance, root: Path, unit_dir: Path, mailctl: Path, env_file: Path) -> list[str]:
    """The instance's units, from imageroot/systemd's templates, running the installed runtime."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for template, pattern in UNITS.items():
        text = (root / "imageroot/systemd" / template).read_text()
        for other, other_pattern in UNITS.items():  # mailctl@%i.service -> mailctl-<name>.service
            text = text.replace(other.replace("@", "@%i"), other_pattern.format(name=instance.name))
        text = (text.replace("EnvironmentFile=-/etc/mailctl/%i.env", f"EnvironmentFile={env_file}")
                .replace("/usr/local/bin/mailctl", str(mailctl))
                .replace("%i", instance.name))
        name = pattern.format(name=instance.name)
        (unit_dir / name).write_text(text)
        written.append(name)
    return written


def _systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def install(instance: Instance, image: str, unit_dir: Path = DEFAULT_UNIT_DIR,
            progress: Callable[[str], None] = print) -> dict:
    """Install `instance` from the module `image`; returns the install record."""
    if installed_record(instance) is not None:
        raise MailError(f"instance {instance.name} is already installed: remove-module {instance.name} first")
    if instance.state_dir.exists() and any(instance.state_dir.iterdir()):
        raise MailError(f"{instance.state_dir} is not empty: instance {instance.name} exists already")
    labels = image_labels(image)
    images = daemon_images(labels)
    missing = [ref for ref in images.values()
               if subprocess.run(["podman", "image", "exists", ref]).returncode != 0]
    if missing:
        raise MailError(f"missing daemon image(s) {', '.join(missing)}: load the module's archive first")
    root = module_dir(instance)
    staging = instance.state_dir / ".module-staging"
    units: list[str] = []
    try:
        staging.mkdir(parents=True)
        progress(f"extracting {image}")
        _extract(image, staging)
        for needed in ("imageroot/actions", "imageroot/templates", "imageroot/systemd", "imageroot/python"):
            if not (staging / needed).is_dir():
                raise MailError(f"{image} has no /{needed}: not a mail module image")
        # The runtime finds its actions beside imageroot/ (the source tree's layout).
        (staging / "actions").symlink_to("imageroot/actions")
        staging.rename(root)
        progress("installing the runtime from the image's wheels")
        mailctl = _make_venv(root)
        env_file = root / "env"
        env = {
            "MAIL_INSTANCE": instance.name,
            "MAIL_STATE_DIR": str(instance.state_root),
            "MAIL_BIND": instance.bind,
            "MAIL_PORT_OFFSET": str(instance.port_offset),
            "MAIL_ENGINE": instance.engine,
            "MAIL_PROJECT_ROOT": str(root),
            "MAIL_IMAGE_TAG": image_tag(images),
        }
        env_file.write_text(_env_lines(env))
        units = _write_units(instance, root, unit_dir, mailctl, env_file)
        if _systemd_running():
            subprocess.run(["systemctl", "daemon-reload"], check=False)
            subprocess.run(["systemctl", "enable", *units], check=False, capture_output=True)
        record = {
            "instance": instance.name,
            "image": image,
            "image_id": _podman("image", "inspect", "--format", "{{.Id}}", image).stdout.strip(),
            "version": labels.get("org.opencontainers.image.version", ""),
            "images": images,
            "unit_dir": str(unit_dir),
            "units": units,
            "mailctl": str(mailctl),
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _record_path(instance).write_text(json.dumps(record, indent=2) + "\n")
    except BaseException:  # nothing of a failed install is left
        for unit in units:
            (unit_dir / unit).unlink(missing_ok=True)
        shutil.rmtree(instance.state_dir, ignore_errors=True)
        raise
    progress(f"instance {instance.name} installed: units {', '.join(units)} in {unit_dir}")
    return record


def remove(instance: Instance, progress: Callable[[str], None] = print) -> None:
    """Remove an installed instance: containers, network, volumes, state and units."""
    from . import lifecycle

    record = installed_record(instance)
    if record is None:
        raise MailError(f"instance {instance.name} was not installed with install-module "
                        f"(no {_record_path(instance)})")
    unit_dir = Path(record["unit_dir"])
    if _systemd_running():
        subprocess.run(["systemctl", "disable", "--now", *record["units"]], check=False, capture_output=True)
    lifecycle.down(instance, purge=True, progress=progress)
    for unit in record["units"]:
        (unit_dir / unit).unlink(missing_ok=True)
    if _systemd_running():
        subprocess.run(["systemctl", "daemon-reload"], check=False)
    shutil.rmtree(instance.state_dir, ignore_errors=True)
    progress(f"instance {instance.name} removed")


def dispatch(instance: Instance) -> None:
    """Run this command with the instance's installed runtime, if it has one and this is not it.

    The installed env file gives defaults for the MAIL_* variables (a caller's own
    values win) and pins MAIL_PROJECT_ROOT and MAIL_IMAGE_TAG to what was installed.
    """
    record = installed_record(instance)
    if record is None:
        return
    mailctl = Path(record["mailctl"])
    if Path(sys.prefix).resolve() == mailctl.parent.parent.resolve():
        return  # already the installed runtime
    if not mailctl.exists():
        raise MailError(f"instance {instance.name}: its runtime {mailctl} is missing; reinstall it")
    env = dict(os.environ)
    for line in (module_dir(instance) / "env").read_text().splitlines():
        key, _, value = line.partition("=")
        value = shlex.split(value)[0] if value else ""
        if key in PINNED or key not in env:
            env[key] = value
    os.execve(str(mailctl), [str(mailctl), *sys.argv[1:]], env)
