"""`mailctl kube` played by a real consumer of Kubernetes YAML, `podman kube play`.

An instance is set up with `up` (domain, a user in the embedded LDAP), taken down (its
volumes kept), and its manifests are played with the exact command `mailctl kube --podman`
prints: every daemon becomes healthy (the image health checks, turned into probes), a
message sent over SMTP is read over IMAP (scanned by rspamd in its pod; EICAR refused by
clamav in its pod), an action run on the state reaches the pods
through regenerated manifests, and `podman kube down` plus the printed clean-up leave no
pod, Secret or ConfigMap volume behind.
"""

from __future__ import annotations

import email
import os
import shlex
import shutil
import smtplib
import subprocess
import tempfile
import time
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from protocol import HOST, imaps, message, token, wait_for

pytestmark = pytest.mark.containers

DAEMONS = ("redis", "openldap", "clamav", "rspamd", "dovecot", "postfix")
OFFSET = int(os.environ.get("MAIL_TEST_KUBE_OFFSET", "23500"))
DOMAIN, USER, PASSWORD = "example.org", "kube.user", "Kube-pass1"
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def _run(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env, check=check)


def _hint(stderr: str, prefix: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in stderr.splitlines() if line.startswith(prefix))


class Played:
    """The instance's manifests (`mailctl kube --podman`), played and stopped with the
    commands it prints."""

    def __init__(self, cli, yaml_file: Path):
        self.cli, self.yaml_file = cli, yaml_file
        self.stop_command = ""

    def generate(self) -> list[dict]:
        r = self.cli("kube", "--podman")
        assert r.code == 0, r.stderr
        self.yaml_file.write_text(r.stdout)
        self.play_command = _hint(r.stderr, "play with").replace("FILE", str(self.yaml_file))
        self.stop_command = _hint(r.stderr, "stop with").replace("FILE", str(self.yaml_file))
        return list(yaml.safe_load_all(r.stdout))

    def play(self) -> None:
        words = shlex.split(self.play_command)
        env = dict(os.environ)
        while "=" in words[0]:  # leading VAR=value words
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        p = _run(*words, env=env, check=False)
        assert p.returncode == 0, p.stderr

    def stop(self) -> subprocess.CompletedProcess:
        return subprocess.run(self.stop_command, shell=True, capture_output=True, text=True)

    def wait_healthy(self) -> None:
        for daemon in DAEMONS:
            name = f"{self.cli.instance}-{daemon}-pod-0-{daemon}"
            healthy = lambda n=name: _run("podman", "healthcheck", "run", n, check=False).returncode == 0  # noqa: E731
            try:
                wait_for(lambda h=healthy: h() or time.sleep(1), f"{daemon} healthy under podman kube play",
                         timeout=120)
            except AssertionError as exc:
                logs = _run("podman", "logs", "--tail", "20", name, check=False)
                raise AssertionError(f"{exc}\n{logs.stdout}{logs.stderr}") from None

    def deliver(self, rcpt: str, subject: str) -> None:
        """Send over SMTP (postfix may still be starting) and wait for it in the user's INBOX."""
        def send() -> bool:
            try:
                with smtplib.SMTP(HOST, self.cli.port(25), timeout=30) as s:
                    s.send_message(message("someone@example.net", rcpt, subject))
                return True
            except (OSError, smtplib.SMTPException):
                return False

        wait_for(send, "postfix accepting the message", timeout=60)

        def delivered() -> bytes:
            with imaps(self.cli, USER, PASSWORD) as imap:
                imap.select("INBOX", readonly=True)
                _, found = imap.search(None, "SUBJECT", f'"{subject}"')
                if not found[0].split():
                    return b""
                _, data = imap.fetch(found[0].split()[-1], "(BODY.PEEK[HEADER])")
                return data[0][1]

        headers = email.message_from_bytes(wait_for(delivered, "the message in the INBOX over IMAP", timeout=60))
        # Scanned by rspamd in its own pod (postfix reached it as "rspamd", the milter Service).
        assert "X-Spamd-Result" in headers and headers["X-Rspamd-Action"] == "no action"


def _hashes(objects: list[dict]) -> dict[str, str]:
    return {o["metadata"]["name"]: o["spec"]["template"]["metadata"]["annotations"]["mail/inputs-hash"]
            for o in objects if o["kind"] == "Deployment"}


@pytest.fixture(scope="module")
def played(fresh_instance):
    """An instance set up with `up`, taken down, and played by podman; cleaned at the end."""
    cli = fresh_instance("tk1", OFFSET)
    cli.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": DOMAIN})
    cli.run("add-user", {"user": USER, "password": PASSWORD, "display_name": "Kube User"})
    # Its pods would take over the running instance's volumes and ports: refused.
    r = cli("kube", "--podman")
    assert r.code != 0 and "'mailctl down' first" in r.stderr, r.stderr
    r = cli("down")
    assert r.code == 0, r.stderr
    played = Played(cli, Path(tempfile.mkdtemp(prefix="mail-kube-")) / "mail.yaml")
    played.generate()
    played.play()
    yield played
    played.stop()
    pods = _run("podman", "pod", "ls", "-q", "--filter", f"name=^{cli.instance}-", check=False).stdout.split()
    if pods:
        _run("podman", "pod", "rm", "-f", *pods, check=False)
    shutil.rmtree(played.yaml_file.parent, ignore_errors=True)


def test_manifests_validate_offline_against_kubernetes_1_37(played):
    for obj in yaml.safe_load_all(played.yaml_file.read_text()):
        kubernetes_validate.validate(obj, "1.37.0", strict=True)


def test_every_daemon_becomes_healthy(played):
    played.wait_healthy()


def test_a_message_is_delivered_and_read_over_imap(played):
    played.deliver(f"{USER}@{DOMAIN}", f"through kube play {token()}")


def test_a_virus_is_refused_by_clamav_in_its_own_pod(played):
    m = message("someone@example.net", f"{USER}@{DOMAIN}", f"virus {token()}")
    m.add_attachment(EICAR, maintype="application", subtype="octet-stream", filename="eicar.com")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        with smtplib.SMTP(HOST, played.cli.port(25), timeout=60) as s:
            s.send_message(m)
    assert refused.value.smtp_code == 554 and b"EICAR" in refused.value.smtp_error


def test_an_action_reaches_the_pods_through_regenerated_manifests(played):
    """The documented path: run the action on the state, regenerate, apply (podman: play again)."""
    before = _hashes(list(yaml.safe_load_all(played.yaml_file.read_text())))
    played.cli.run("add-domain", {"domain": "example.com", "addusers": True})
    after = _hashes(played.generate())
    name = played.cli.instance
    # Only the daemons that read the domains (postfix's lookups, dovecot's) roll.
    assert sorted(k for k in before if before[k] != after[k]) == [f"{name}-dovecot", f"{name}-postfix"]
    p = played.stop()
    assert p.returncode == 0, p.stderr
    played.play()
    played.wait_healthy()
    played.deliver(f"{USER}@example.com", f"new domain through kube play {token()}")


def test_kube_down_and_the_printed_cleanup_leave_nothing(played):
    p = played.stop()
    assert p.returncode == 0, p.stderr
    prefix = f"{played.cli.instance}-"
    assert _run("podman", "pod", "ls", "-q", "--filter", f"name=^{prefix}").stdout.split() == []
    assert _run("podman", "ps", "-aq", "--filter", f"name=^{prefix}").stdout.split() == []
    secrets = _run("podman", "secret", "ls", "--format", "{{.Name}}").stdout.split()
    assert [s for s in secrets if s.startswith(prefix)] == []
    volumes = _run("podman", "volume", "ls", "--format", "{{.Name}}").stdout.split()
    data = {f"{prefix}{purpose}" for purpose in ("vmail", "queue", "redis", "ldap", "clamav", "rspamd")}
    # The data volumes stay (as after `mailctl down`); nothing else of the instance does.
    assert [v for v in volumes if v.startswith(prefix) and v not in data] == []
