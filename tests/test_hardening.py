"""Hardening on a running instance: each test plays an attack and shows it does no harm.

- the embedded LDAP refuses anonymous reads; postfix and dovecot still find users (reader DN);
- Redis refuses clients without the password; rspamd, which has it, still writes there;
- the LDAP admin password never appears on a command line while the container starts;
- user passwords are SHA512-CRYPT hashes, an older {SSHA512} hash still logs in and is
  replaced at the next password change;
- SMTP: VRFY no more telling than RCPT, bare-LF smuggling refused, size limit, per-client connection rate limit,
  Rspamd's rate limit of an authenticated sender (driven to 4xx);
  IMAP: failed logins from one address get slower (dovecot's auth penalty);
- the reload scripts' check copies (with secrets) are removed when the check fails.
"""

from __future__ import annotations

import imaplib
import socket
import subprocess
import time
from email.utils import formatdate

import pytest
import redis
from ldap3 import HASHED_SALTED_SHA512, MODIFY_REPLACE, SUBTREE, Connection, Server
from ldap3.utils.hashed import hashed
from protocol import HOST, daemon_address, inbox_subjects, insecure_tls, message, token, wait_for

pytestmark = pytest.mark.containers

DOMAIN = "example.org"
USER, PASSWORD = "hdjane", "Hard3ned-pass"
BASE = "dc=mail,dc=local"


@pytest.fixture(scope="module")
def mx(mail):
    mail.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": DOMAIN})
    mail.run("add-user", {"user": USER, "password": PASSWORD})
    yield mail
    mail.run("remove-user", {"user": USER}, expect=None)


def secret(cli, name: str) -> str:
    return (cli.state_dir / cli.instance / "secrets" / name).read_text()


def address(cli, daemon: str) -> str:
    return daemon_address(cli.instance, daemon)


def send25(cli, to: str, subject: str) -> None:
    import smtplib

    with smtplib.SMTP(HOST, cli.port(25), timeout=30) as s:
        s.ehlo("client.example.net")
        s.send_message(message("someone@example.net", to, subject), "someone@example.net", [to])


def smtp_dialog(cli, lines: list[bytes], port: int = 25) -> list[str]:
    """Send raw SMTP lines (each answered before the next); return every reply line."""
    replies = []
    with socket.create_connection((HOST, cli.port(port)), timeout=30) as sock:
        stream = sock.makefile("rb")

        def read_reply() -> str:
            text = ""
            while True:
                line = stream.readline().decode(errors="replace")
                text += line
                if len(line) < 4 or line[3] != "-":
                    return text.strip()

        replies.append(read_reply())
        for line in lines:
            sock.sendall(line)
            reply = read_reply()
            replies.append(reply)
            if not reply:
                break
    return replies


def test_embedded_ldap_refuses_anonymous_reads(mx):
    server = Server(f"ldap://{address(mx, 'openldap')}:389", connect_timeout=5)
    anonymous = Connection(server)
    anonymous.open()
    anonymous.bind()  # refused (disallow bind_anon), or bound with no read right
    anonymous.search(BASE, f"(uid={USER})", SUBTREE, attributes=["*"])
    assert anonymous.entries == []
    anonymous.unbind()

    reader = Connection(server, f"cn=reader,{BASE}", secret(mx, "ldap-reader-password"), auto_bind=True)
    reader.search(BASE, f"(uid={USER})", SUBTREE, attributes=["uid", "userPassword"])
    assert [e.uid.value for e in reader.entries] == [USER]
    assert not reader.entries[0].entry_attributes_as_dict.get("userPassword")  # only the admin reads it
    assert not reader.modify(f"uid={USER},ou=People,{BASE}", {"cn": [(MODIFY_REPLACE, ["x"])]})  # read-only
    reader.unbind()

    # postfix (address lookup) and dovecot (user's bind, group lookup) read as the reader.
    subject = f"ldap-{token()}"
    send25(mx, f"{USER}@{DOMAIN}", subject)
    wait_for(lambda: inbox_subjects(mx, USER, PASSWORD, subject), "delivery to an embedded user")


def test_redis_refuses_clients_without_the_password(mx):
    host = address(mx, "redis")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=host, port=6379, socket_timeout=5).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=host, port=6379, password="guess", socket_timeout=5).ping()
    client = redis.Redis(host=host, port=6379, password=secret(mx, "redis-password"), socket_timeout=5)
    assert client.ping()
    # rspamd, the one daemon with the password, still uses Redis (its scan history).
    subject = f"redis-{token()}"
    send25(mx, f"{USER}@{DOMAIN}", subject)
    wait_for(lambda: inbox_subjects(mx, USER, PASSWORD, subject), "delivery through rspamd")
    assert wait_for(lambda: client.keys("rs_history*"), "rspamd's history in redis")
    # the runtime's own redis-cli calls (export's SAVE, Bayes counts) authenticate from the secret file
    from mailctl.stack import redis_cli

    out = subprocess.run(["podman", "exec", f"{mx.instance}-redis", *redis_cli("PING")], capture_output=True,
                         text=True).stdout
    assert out.strip() == "PONG"


def submit(cli, user: str, password: str, subject: str) -> tuple[int, str]:
    """Send one message as `user` on 587 (STARTTLS + AUTH) to itself: (250, "") or the refusal."""
    import smtplib

    try:
        with smtplib.SMTP(HOST, cli.port(587), timeout=30) as s:
            s.starttls(context=insecure_tls())
            s.login(user, password)
            s.send_message(message(f"{user}@{DOMAIN}", f"{user}@{DOMAIN}", subject))
        return 250, ""
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code, exc.smtp_error.decode(errors="replace")


def test_authenticated_sender_above_its_rate_limit_is_deferred_others_are_not(mx):
    """antispam.sender_rate_limit set low (burst 3, 1 an hour): the 4th message of one login is
    deferred with 4xx by Rspamd's ratelimit (each login has its own Redis bucket), another
    login still sends, and every message accepted before the limit is delivered once."""
    other, other_password = "hdbob", "Hard3ned-bob"
    mx.run("add-user", {"user": other, "password": other_password})
    mx.run("set-filter-configuration", {"antispam": {"enabled": True, "sender_rate_limit": {
        "enabled": True, "burst": 3, "messages_per_hour": 1}}})
    assert mx.run("get-filter-configuration")["antispam"]["sender_rate_limit"] == {
        "enabled": True, "burst": 3, "messages_per_hour": 1}
    client = redis.Redis(host=address(mx, "redis"), port=6379, password=secret(mx, "redis-password"),
                         socket_timeout=5)
    client.delete(*client.keys("RL*") or ["none"])  # buckets of earlier tests' messages
    try:
        run = token(6)
        replies = [submit(mx, USER, PASSWORD, f"rate-{run}-{n}") for n in range(6)]
        accepted = [n for n, (code, _) in enumerate(replies) if code == 250]
        deferred = [(code, text) for code, text in replies if code != 250]
        assert accepted == list(range(len(accepted))) and 1 <= len(accepted) <= 4, replies
        assert deferred and all(400 <= code < 500 for code, _ in deferred), replies
        assert submit(mx, other, other_password, f"rate-{run}-other") == (250, "")
        for n in accepted:
            wait_for(lambda n=n: inbox_subjects(mx, USER, PASSWORD, f"rate-{run}-{n}") == 1, f"message {n}")
        wait_for(lambda: inbox_subjects(mx, other, other_password, f"rate-{run}-other") == 1, "the other login's")
        refused = [n for n in range(6) if n not in accepted]
        assert all(inbox_subjects(mx, USER, PASSWORD, f"rate-{run}-{n}") == 0 for n in refused)
        print(f"\nrate limit: burst 3: accepted {len(accepted)}, then {deferred[0]}")
    finally:
        mx.run("set-filter-configuration", {"antispam": {"enabled": True, "sender_rate_limit": {
            "enabled": True, "burst": 200, "messages_per_hour": 200}}})
        client.delete(*client.keys("RL*") or ["none"])
        mx.run("remove-user", {"user": other}, expect=None)


def test_ldap_admin_password_is_never_on_a_command_line(mx, tmp_path):
    """Start the openldap image's entrypoint with every tool it runs wrapped to record its arguments."""
    state = mx.state_dir / mx.instance
    spy = tmp_path / "spy"
    spy.mkdir()
    for tool in ("slappasswd", "slapadd", "slapmodify", "slapcat", "slapd"):
        wrapper = spy / tool
        wrapper.write_text(f'#!/bin/sh\necho "{tool} $*" >>/spy/argv\nexec /usr/sbin/{tool} "$@"\n')
        wrapper.chmod(0o755)
    image = subprocess.run(["podman", "inspect", "--format", "{{.ImageName}}", f"{mx.instance}-openldap"],
                           capture_output=True, text=True, check=True).stdout.strip()
    mounts = ["-v", f"{state / 'config'}:/config:ro", "-v", f"{spy}:/spy"]
    for name in ("ldap-admin-password", "ldap-reader-password"):
        mounts += ["-v", f"{state / 'secrets' / name}:/run/secrets/{name}:ro"]
    run = subprocess.run(["podman", "run", "--rm", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=8192:8192",
                          *mounts, "-e", "PATH=/spy:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                          image, "timeout", "5", "/usr/local/bin/entrypoint"], capture_output=True, text=True)
    argv = (spy / "argv").read_text()
    assert "slappasswd" in argv and "slapd" in argv, (argv, run.stderr)
    for name in ("ldap-admin-password", "ldap-reader-password"):
        assert secret(mx, name) not in argv


def test_password_hashes_are_sha512_crypt_and_upgraded_on_change(mx):
    admin = Connection(Server(f"ldap://{address(mx, 'openldap')}:389"), f"cn=admin,{BASE}",
                       secret(mx, "ldap-admin-password"), auto_bind=True)
    dn = f"uid={USER},ou=People,{BASE}"

    def stored() -> str:
        admin.search(dn, "(objectClass=*)", attributes=["userPassword"])
        value = admin.entries[0].userPassword.value
        return (value if isinstance(value, bytes) else value.encode()).decode()

    assert stored().startswith("{CRYPT}$6$")
    # An entry from an older version: a one-round {SSHA512} hash still logs in...
    old_password = "Older-scheme-pw1"
    assert admin.modify(dn, {"userPassword": [(MODIFY_REPLACE, [hashed(HASHED_SALTED_SHA512, old_password)])]})
    assert stored().upper().startswith("{SSHA512}")
    assert inbox_subjects(mx, USER, old_password, "nothing") == 0
    # ... and the next password change stores SHA512-CRYPT.
    mx.run("set-user-password", {"user": USER, "password": PASSWORD})
    assert stored().startswith("{CRYPT}$6$")
    assert inbox_subjects(mx, USER, PASSWORD, "nothing") == 0
    admin.unbind()


def test_smtp_vrfy_tells_no_more_than_rcpt_smuggling_and_oversize_refused(mx):
    hello = b"EHLO client.example.net\r\n"
    # VRFY as NS8 answers it (252), and for an unknown address the same refusal as RCPT TO.
    vrfy = smtp_dialog(mx, [hello, f"VRFY {USER}@{DOMAIN}\r\n".encode()])
    assert vrfy[-1].startswith(f"252 2.0.0 {USER}@{DOMAIN}"), vrfy
    unknown = f"nobody-{token()}@{DOMAIN}"
    vrfy = smtp_dialog(mx, [hello, f"VRFY {unknown}\r\n".encode()])
    rcpt = smtp_dialog(mx, [hello, b"MAIL FROM:<someone@example.net>\r\n", f"RCPT TO:<{unknown}>\r\n".encode()])
    assert vrfy[-1][:3] == rcpt[-1][:3] == "550", (vrfy, rcpt)

    size = smtp_dialog(mx, [hello, b"MAIL FROM:<someone@example.net> SIZE=60000000\r\n"])
    assert size[-1].startswith("552"), size

    # SMTP smuggling: a message whose body hides <LF>.<LF> and a second transaction. Postfix
    # takes only <CR><LF>.<CR><LF> as the end of data: one message arrives, with the
    # would-be second one as text of its body, never as a message of its own.
    hidden = f"smuggled-{token()}"
    outer = f"outer-{token()}"
    headers = (f"From: someone@example.net\r\nTo: {USER}@{DOMAIN}\r\nDate: {formatdate()}\r\n"
               f"Message-ID: <{token()}@client.example.net>\r\n")
    payload = (f"{headers}Subject: {outer}\r\n\r\nhello\n.\nMAIL FROM:<ceo@{DOMAIN}>\nRCPT TO:<{USER}@{DOMAIN}>\nDATA\n"
               f"Subject: {hidden}\n\nforged\n.\r\n\r\n.\r\n").encode()
    replies = smtp_dialog(mx, [hello, b"MAIL FROM:<someone@example.net>\r\n",
                               f"RCPT TO:<{USER}@{DOMAIN}>\r\n".encode(), b"DATA\r\n", payload, b"QUIT\r\n"])
    assert replies[-2].startswith("250") and replies[-1].startswith("221"), replies
    wait_for(lambda: inbox_subjects(mx, USER, PASSWORD, outer), "the outer message")
    time.sleep(2)
    assert inbox_subjects(mx, USER, PASSWORD, outer) == 1
    assert inbox_subjects(mx, USER, PASSWORD, hidden) == 0


def test_per_client_connection_rate_limit(mx):
    """70 connections in a row from another container (not exempt like the host): anvil refuses some.

    A throw-away container on the network where postfix has its name (stack.home_network)."""
    from mailctl.stack import home_network

    script = ("for i in $(seq 70); do exec 3<>/dev/tcp/postfix/25 || continue; read -t 10 -r line <&3; "
              "echo \"${line%%$'\\r'}\"; printf 'QUIT\\r\\n' >&3; exec 3<&-; done")
    image = subprocess.run(["podman", "inspect", f"{mx.instance}-redis", "--format", "{{.ImageName}}"],
                           capture_output=True, text=True, check=True).stdout.strip()
    network = home_network(mx.instance, "postfix")
    out = subprocess.run(["podman", "run", "--rm", "--network", network, "--ulimit", "nofile=20000:20000",
                          "--ulimit", "nproc=8192:8192", image, "bash", "-c", script], capture_output=True,
                         text=True, timeout=120).stdout.splitlines()
    greeted = [line for line in out if line.startswith("220")]
    refused = [line for line in out if line.startswith("421")]
    assert len(greeted) <= 60 and refused, out[-3:]
    assert "too many connections" in refused[0].lower()


def test_failed_imap_logins_get_slower(mx):
    def attempt(password: str) -> float:
        started = time.monotonic()
        imap = imaplib.IMAP4_SSL(HOST, mx.port(993), ssl_context=insecure_tls(), timeout=60)
        try:
            imap.login(USER, password)
            ok = True
        except imaplib.IMAP4.error:
            ok = False
        finally:
            try:
                imap.logout()
            except (imaplib.IMAP4.error, OSError):
                pass
        assert ok == (password == PASSWORD)
        return time.monotonic() - started

    delays = [attempt(f"wrong-{i}-{token()}") for i in range(4)]
    assert delays[-1] > delays[0] + 2, delays
    attempt(PASSWORD)  # a success clears the penalty of this address


@pytest.mark.parametrize("daemon", ["postfix", "dovecot", "rspamd"])
def test_failed_config_check_leaves_no_secret_copy(mx, daemon):
    container = f"{mx.instance}-{daemon}"
    bad = {"postfix": "echo 'this line has no equals sign' >> /tmp/hd-bad/main.cf",
           "dovecot": "echo 'protocols = nosuchprotocol {' >> /tmp/hd-bad/dovecot.conf",
           "rspamd": "mkdir -p /tmp/hd-bad/local.d && echo 'broken = {' >> /tmp/hd-bad/local.d/options.inc"}[daemon]
    prepare = f"rm -rf /tmp/hd-bad && cp -a /config/current/{daemon} /tmp/hd-bad && {bad}"
    subprocess.run(["podman", "exec", container, "sh", "-c", prepare], check=True)
    check = subprocess.run(["podman", "exec", container, "/usr/local/bin/reload", "--check", "/tmp/hd-bad"],
                           capture_output=True, text=True)
    assert check.returncode != 0, check.stdout
    left = subprocess.run(["podman", "exec", container, "sh", "-c", f"ls -d /tmp/{daemon}-check 2>/dev/null; "
                           "rm -rf /tmp/hd-bad"], capture_output=True, text=True).stdout
    assert left.strip() == ""
