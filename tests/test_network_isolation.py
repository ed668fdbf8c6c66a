"""Per-link networks on the shared instance: a daemon reaches only the daemons it needs.

clamav and rspamd parse untrusted mail. From inside the clamav container, redis:6379,
openldap:389 and dovecot's LMTP are unreachable, by name and at their addresses; from
rspamd, Redis answers; and mail still flows through every link (delivered over LMTP after
the milter, a virus refused through clamav, spam scored and refused by rspamd). An instance
made with the former one shared network is moved to per-link networks by `up`.
"""

from __future__ import annotations

import json
import smtplib
import subprocess

import pytest
from conftest import ROOT
from protocol import daemon_address, inbox_subjects, message, send, token, wait_for

pytestmark = pytest.mark.containers

USER, PASSWORD = "isolbob", "Isolation-Pass-4711"
DOMAIN = "example.org"
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
CONNECT_SECONDS = 3


@pytest.fixture(scope="module")
def mx(mail):
    mail.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": DOMAIN})
    r = mail.run("add-user", {"user": USER, "password": PASSWORD, "display_name": "Isolation Bob"}, expect=None)
    assert r.code == 0 or "exists" in r.stdout + r.stderr, r.stderr
    return mail


def address(mx, daemon: str) -> str:
    """The daemon's fixed address, where its clients reach it."""
    return daemon_address(mx.instance, daemon)


def connects(mx, daemon: str, host: str, port: int) -> bool:
    """Whether a TCP connection from inside `daemon`'s container to host:port opens (bash /dev/tcp)."""
    script = f"exec 3<>/dev/tcp/{host}/{port}"
    p = subprocess.run(["podman", "exec", f"{mx.instance}-{daemon}", "timeout", str(CONNECT_SECONDS),
                        "bash", "-c", script], capture_output=True, text=True, timeout=30)
    return p.returncode == 0


def test_the_probe_itself_connects(mx):
    """The check below can say yes: clamav reaches its own clamd."""
    assert connects(mx, "clamav", "127.0.0.1", 3310)


@pytest.mark.parametrize(("target", "port"), [("redis", 6379), ("openldap", 389), ("dovecot", 24)])
def test_clamav_reaches_neither_redis_nor_ldap_nor_lmtp(mx, target, port):
    assert not connects(mx, "clamav", target, port), f"clamav reached {target}:{port} by name"
    assert not connects(mx, "clamav", address(mx, target), port), f"clamav reached {target}:{port} by address"


def test_rspamd_reaches_no_ldap(mx):
    assert not connects(mx, "rspamd", address(mx, "openldap"), 389)


def test_rspamd_talks_to_redis(mx):
    """Redis answers rspamd by name (-NOAUTH without the password: it is Redis, and it still wants one)."""
    script = "exec 3<>/dev/tcp/redis/6379; printf 'PING\\r\\n' >&3; head -c 7 <&3"
    out = mx.exec("rspamd", "timeout", "5", "bash", "-c", script)
    assert out.startswith("-NOAUTH"), out
    assert connects(mx, "rspamd", address(mx, "redis"), 6379)


def test_mail_still_flows_through_every_link(mx):
    to = f"{USER}@{DOMAIN}"
    # postfix -> openldap (recipient), rspamd (milter) -> redis, clamav; postfix -> dovecot (LMTP)
    subject = f"isolation clean {token()}"
    send(mx, message("alice@example.net", to, subject))
    wait_for(lambda: inbox_subjects(mx, to, PASSWORD, subject), "the clean message in the INBOX")

    virus = message("alice@example.net", to, f"isolation virus {token()}")
    virus.add_attachment(EICAR, maintype="application", subtype="octet-stream", filename="eicar.com")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(mx, virus)
    assert refused.value.smtp_code == 554 and b"virus found" in refused.value.smtp_error

    spam = message("alice@example.net", to, f"isolation spam {token()}")
    spam.set_content(f"{GTUBE}\n")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(mx, spam)
    assert refused.value.smtp_code == 554, refused.value
    assert b"spam" in refused.value.smtp_error.lower() or b"gtube" in refused.value.smtp_error.lower(), \
        refused.value.smtp_error


def test_daemons_have_no_names_for_what_they_do_not_reach(mx):
    hosts = mx.exec("clamav", "cat", "/etc/hosts")
    for other in ("redis", "openldap", "dovecot"):
        assert not any(other in line.split()[1:] for line in hosts.splitlines()), hosts


def test_up_moves_an_instance_made_with_the_one_shared_network(fresh_instance):
    """The upgrade path: an instance whose containers share one plain network named after it
    (the layout before per-link networks) gets its containers made again on `up`, on the
    per-link networks, the old network made again isolated, and `down` removes them all."""
    old = fresh_instance("nu1", 25000, up=False)
    image = f"localhost/mail-redis:{(ROOT / 'VERSION').read_text().strip()}"
    subprocess.run(["podman", "network", "create", "--label", f"mail.instance={old.instance}", old.instance],
                   check=True, capture_output=True)
    subprocess.run(["podman", "run", "-d", "--name", f"{old.instance}-redis", "--network", old.instance,
                    "--label", f"mail.instance={old.instance}", "--label", "mail.daemon=redis",
                    "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=8192:8192", image, "sleep", "600"],
                   check=True, capture_output=True)
    r = old("up", timeout=300)
    assert r.code == 0, r.stderr
    assert "moving to per-link networks" in r.stderr
    inspect = json.loads(subprocess.run(["podman", "network", "inspect", old.instance], capture_output=True,
                                        text=True, check=True).stdout)[0]
    assert inspect["options"].get("isolate") == "true" and inspect["labels"]["mail.network-layout"] == "per-link"
    redis = json.loads(subprocess.run(["podman", "inspect", f"{old.instance}-redis"], capture_output=True,
                                      text=True, check=True).stdout)[0]
    assert list(redis["NetworkSettings"]["Networks"]) == [f"{old.instance}-redis"]
    assert old("down").code == 0
    left = subprocess.run(["podman", "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True,
                          check=True).stdout.split()
    assert [n for n in left if n == old.instance or n.startswith(f"{old.instance}-")] == []
