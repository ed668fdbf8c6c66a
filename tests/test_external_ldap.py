"""External LDAP user domains on a running instance, against a second, real slapd.

A slapd container (the openldap image, run with its own slapd.conf) runs outside the
instance (podman's default network, reached through the host) with two trees: an RFC 2307
one (posixAccount/posixGroup) and one shaped like
Active Directory (user/group objects, sAMAccountName, member DNs, a nested group), made
with a minimal AD-like schema since no AD server is available here. The mail containers
and the runtime reach it at its address.

Shown with real SMTP and IMAP clients: set-user-domain refuses a server that does not
answer or a bind that fails; switching the user domain keeps the mailbox of a user with
the same name; user and group addresses of the external domain receive mail; list-users
reads the external users; switching back to `local` works; and the bind password never
appears in action output, the state database or a rendered file.
"""

from __future__ import annotations

import imaplib
import json
import smtplib
import subprocess
import tempfile
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest
from conftest import ROOT
from ldap3 import Connection, Server
from ldap3.utils.hashed import hashed
from protocol import HOST, OUTSIDE_NETWORK, insecure_tls, token

pytestmark = pytest.mark.containers

DOMAIN = "example.org"
LOCAL_PW = "Local-john-pw1"
# Passwords with every character that could trip a sed expression or a config parser.
READER_PW = r"""Rd&r/\x|#1 'q"u$HOME%u"""
READER_PW2 = r"""n3w&\\pw"#|/"""
JOHN_EXT_PW = "John-ext-pw9"
MARY_EXT_PW = "Mary-ext-pw9"
JANE_AD_PW = "Jane-ad-pw9"
BOB_AD_PW = "Bob-ad-pw9"
EXT_BASE = "dc=ext,dc=test"
AD_BASE = "dc=ad,dc=test"
EXT_READER = f"cn=reader,{EXT_BASE}"
AD_READER = f"cn=reader,{AD_BASE}"

# A few Active Directory classes and attributes, enough for the "ad" schema's queries.
AD_SCHEMA = """
attributetype ( 1.3.6.1.4.1.55555.1.1 NAME 'sAMAccountName'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.55555.2.1 NAME 'user' SUP top STRUCTURAL
    MUST cn MAY ( sAMAccountName $ userPassword $ mail $ displayName ) )
objectclass ( 1.3.6.1.4.1.55555.2.2 NAME 'computer' SUP user STRUCTURAL )
objectclass ( 1.3.6.1.4.1.55555.2.3 NAME 'group' SUP top STRUCTURAL
    MUST cn MAY ( sAMAccountName $ member $ description ) )
"""


def _database(base: str) -> str:
    name = base.split(",")[0].split("=")[1]
    return f"""
database mdb
maxsize 104857600
suffix "{base}"
directory /var/lib/ldap/{name}
access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by dn.exact="cn=reader,{base}" read
    by anonymous auth
    by * none
"""


SLAPD_CONF = """
TLSCertificateFile /ext/cert.pem
TLSCertificateKeyFile /ext/key.pem
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
include /ext/ad.schema
pidfile /run/slapd/slapd.pid
loglevel none
modulepath /usr/lib/ldap
moduleload back_mdb
""" + _database(EXT_BASE) + _database(AD_BASE)


def _entry(dn: str, **attrs: str | list[str]) -> str:
    lines = [f"dn: {dn}"]
    for key, values in attrs.items():
        for value in values if isinstance(values, list) else [values]:
            lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"


def _ssha(password: str) -> str:
    from ldap3 import HASHED_SALTED_SHA

    return hashed(HASHED_SALTED_SHA, password)


def _top(base: str) -> list[str]:
    dc = base.split(",")[0].split("=")[1]
    return [
        _entry(base, objectClass=["dcObject", "organization"], dc=dc, o=f"{dc} users"),
        _entry(f"cn=reader,{base}", objectClass=["organizationalRole", "simpleSecurityObject"], cn="reader",
               userPassword=_ssha(READER_PW)),
        _entry(f"ou=People,{base}", objectClass="organizationalUnit", ou="People"),
        _entry(f"ou=Groups,{base}", objectClass="organizationalUnit", ou="Groups"),
    ]


def _posix_user(uid: str, number: int, password: str) -> str:
    return _entry(f"uid={uid},ou=People,{EXT_BASE}", objectClass=["inetOrgPerson", "posixAccount"], uid=uid,
                  cn=f"{uid.title()} External", sn="External", uidNumber=str(number), gidNumber="20000",
                  homeDirectory=f"/home/{uid}", userPassword=_ssha(password))


EXT_LDIF = "\n".join([
    *_top(EXT_BASE),
    _posix_user("john", 20001, JOHN_EXT_PW),
    _posix_user("mary", 20002, MARY_EXT_PW),
    _entry(f"cn=staff,ou=Groups,{EXT_BASE}", objectClass="posixGroup", cn="staff", gidNumber="20000",
           memberUid=["john", "mary"]),
])

AD_LDIF = "\n".join([
    *_top(AD_BASE),
    _entry(f"cn=Jane Doe,ou=People,{AD_BASE}", objectClass="user", cn="Jane Doe", sAMAccountName="jane",
           displayName="Jane Doe", userPassword=_ssha(JANE_AD_PW)),
    _entry(f"cn=Bob Roe,ou=People,{AD_BASE}", objectClass="user", cn="Bob Roe", sAMAccountName="bob",
           displayName="Bob Roe", userPassword=_ssha(BOB_AD_PW)),
    _entry(f"cn=WS01,ou=People,{AD_BASE}", objectClass="computer", cn="WS01", sAMAccountName="ws01$"),
    _entry(f"cn=Ops,ou=Groups,{AD_BASE}", objectClass="group", cn="Ops", sAMAccountName="ops",
           member=f"cn=Bob Roe,ou=People,{AD_BASE}"),
    _entry(f"cn=Team,ou=Groups,{AD_BASE}", objectClass="group", cn="Team", sAMAccountName="team",
           member=[f"cn=Jane Doe,ou=People,{AD_BASE}", f"cn=Ops,ou=Groups,{AD_BASE}"]),
])


@dataclass
class ExternalLdap:
    container: str
    ip: str

    @property
    def url(self) -> str:
        return f"ldap://{self.ip}:389"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.ip}:636"


def _image() -> str:
    return f"localhost/mail-openldap:{(ROOT / 'VERSION').read_text().strip()}"


@pytest.fixture(scope="module")
def ext_ldap(mail):
    """A second slapd, outside the instance (OUTSIDE_NETWORK); removed at the end."""
    name = f"{mail.instance}-extldap"
    subprocess.run(["podman", "rm", "-f", "-v", name], capture_output=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    (workdir / "slapd.conf").write_text(SLAPD_CONF)
    (workdir / "ad.schema").write_text(AD_SCHEMA)
    (workdir / "ext.ldif").write_text(EXT_LDIF)
    (workdir / "ad.ldif").write_text(AD_LDIF)
    # A self-signed certificate, as many directory servers have (ldaps:// and STARTTLS).
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    f"/CN={name}", "-keyout", str(workdir / "key.pem"), "-out", str(workdir / "cert.pem")],
                   check=True, capture_output=True)
    (workdir / "key.pem").chmod(0o644)  # read by slapd's user; a throw-away test key
    workdir.chmod(0o755)
    start = ("mkdir -p /run/slapd /var/lib/ldap/ext /var/lib/ldap/ad"
             f" && slapadd -f /ext/slapd.conf -b {EXT_BASE} -l /ext/ext.ldif"
             f" && slapadd -f /ext/slapd.conf -b {AD_BASE} -l /ext/ad.ldif"
             " && chown -R openldap:openldap /run/slapd /var/lib/ldap"
             " && exec slapd -d 0 -h 'ldap:/// ldaps:///' -u openldap -g openldap -f /ext/slapd.conf")
    subprocess.run(["podman", "run", "-d", "--name", name, "--network", OUTSIDE_NETWORK,
                    "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=8192:8192",
                    "-v", f"{workdir}:/ext:ro", _image(), "bash", "-c", start], check=True, capture_output=True)
    try:
        template = f'{{{{(index .NetworkSettings.Networks "{OUTSIDE_NETWORK}").IPAddress}}}}'
        ip = subprocess.run(["podman", "inspect", "-f", template, name], capture_output=True, text=True,
                            check=True).stdout.strip()
        ldap = ExternalLdap(name, ip)
        deadline = time.time() + 30
        while True:
            try:
                Connection(Server(ldap.url, connect_timeout=2), EXT_READER, READER_PW, auto_bind=True).unbind()
                break
            except Exception:
                if time.time() > deadline:
                    logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True)
                    raise AssertionError(f"external slapd did not start: {logs.stdout}{logs.stderr}") from None
                time.sleep(0.5)
        yield ldap
    finally:
        subprocess.run(["podman", "rm", "-f", "-v", name], capture_output=True)
        subprocess.run(["rm", "-rf", str(workdir)])


class Transcript:
    """Runs actions and keeps every byte they printed, to look for secrets in it."""

    def __init__(self, cli):
        self.cli = cli
        self.text = ""

    def run(self, action: str, data=None, expect: int = 0):
        r = self.cli(*(["run", action] + ([] if data is None else ["--data", json.dumps(data)])))
        self.text += r.stdout + r.stderr
        assert r.code == expect, f"{action} exit {r.code}\nstdout: {r.stdout}\nstderr: {r.stderr}"
        if expect == 10:
            return json.loads(r.stdout)
        return json.loads(r.stdout) if r.stdout.strip() else None


@pytest.fixture(scope="module")
def mx(mail, ext_ldap):
    """The instance on the embedded domain with a local john (and alice), plus the transcript."""
    t = Transcript(mail)
    t.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": DOMAIN})
    t.run("alter-domain", {"domain": DOMAIN, "addusers": True, "addgroups": True})
    created = []
    for user in ("john", "extalice"):
        if mail.run("add-user", {"user": user, "password": LOCAL_PW}, expect=None).code == 0:
            created.append(user)
        else:
            t.run("set-user-password", {"user": user, "password": LOCAL_PW})
    yield t
    mail.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local"}, expect=None)
    for user in created:
        mail.run("remove-user", {"user": user}, expect=None)


def ext_domain(ldap: ExternalLdap, **over) -> dict:
    """The RFC 2307 tree over STARTTLS; the test slapd's certificate is self-signed (tls_verify off)."""
    return {"name": "ext.test", "schema": "rfc2307", "url": ldap.url, "base_dn": EXT_BASE,
            "bind_dn": EXT_READER, "bind_password": READER_PW, "tls": True, "tls_verify": False, **over}


def ad_domain(ldap: ExternalLdap) -> dict:
    return {"name": "ad.test", "schema": "ad", "url": ldap.url, "base_dn": AD_BASE,
            "bind_dn": AD_READER, "bind_password": READER_PW, "tls": True, "tls_verify": False}


def send25(cli, rcpts: list[str], subject: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "someone@example.net", rcpts[0], subject
    msg["Date"], msg["Message-ID"] = formatdate(localtime=True), make_msgid(domain="client.example.net")
    msg.set_content(f"Test message {subject}.\n")
    with smtplib.SMTP(HOST, cli.port(25), timeout=20) as s:
        s.ehlo("client.example.net")
        s.send_message(msg, "someone@example.net", rcpts)


def rcpt(cli, address: str) -> int:
    with smtplib.SMTP(HOST, cli.port(25), timeout=20) as s:
        s.ehlo("client.example.net")
        s.mail("someone@example.net")
        return s.rcpt(address)[0]


def imap_login(cli, user: str, password: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4(HOST, cli.port(143), timeout=20)
    imap.starttls(ssl_context=insecure_tls())
    imap.login(user, password)
    return imap


def can_login(cli, user: str, password: str) -> bool:
    try:
        imap_login(cli, user, password).logout()
        return True
    except imaplib.IMAP4.error:
        return False


def wait_for(cli, user: str, password: str, subject: str, timeout: float = 30) -> None:
    """Poll the user's INBOX over IMAP until a message with `subject` is there."""
    deadline = time.time() + timeout
    while True:
        imap = imap_login(cli, user, password)
        try:
            imap.select("INBOX", readonly=True)
            found = imap.search(None, "SUBJECT", f'"{subject}"')[1][0].split()
        finally:
            imap.logout()
        if found:
            return
        assert time.time() < deadline, f"{subject!r} not delivered to {user}"
        time.sleep(0.5)


def test_set_user_domain_checks_server_and_bind(mx, ext_ldap):
    def rejected(data, field):
        errors = mx.run("set-user-domain", data, expect=10)
        assert [e["field"] for e in errors] == [field], errors

    rejected(ext_domain(ext_ldap, url=f"ldap://{ext_ldap.ip}:3899"), "url")
    rejected(ext_domain(ext_ldap, bind_password="wrong-password"), "bind_password")
    rejected(ext_domain(ext_ldap, bind_dn=f"cn=nobody,{EXT_BASE}"), "bind_password")
    rejected(ext_domain(ext_ldap, base_dn="dc=missing,dc=test"), "base_dn")
    rejected({k: v for k, v in ext_domain(ext_ldap).items() if k != "bind_password"}, "bind_password")
    rejected(ext_domain(ext_ldap, name="local"), "name")
    assert "ext.test" not in [d["name"] for d in mx.run("list-user-domains")["domains"]]


def test_tls_verify_refuses_a_self_signed_directory_and_is_on_by_default(mx, ext_ldap):
    unverified = {k: v for k, v in ext_domain(ext_ldap).items() if k != "tls_verify"}
    for data in ({**unverified, "url": ext_ldap.ldaps_url},  # ldaps://
                 unverified,  # ldap:// + STARTTLS
                 ext_domain(ext_ldap, tls_verify=True)):
        errors = mx.run("set-user-domain", data, expect=10)
        assert [(e["field"], e["error"]) for e in errors] == [("tls_verify", "ldap_certificate_invalid")], errors
    assert "ext.test" not in [d["name"] for d in mx.run("list-user-domains")["domains"]]
    mx.run("set-user-domain", ext_domain(ext_ldap, url=ext_ldap.ldaps_url))
    mx.run("set-user-domain", ext_domain(ext_ldap))
    info = next(d for d in mx.run("list-user-domains")["domains"] if d["name"] == "ext.test")
    assert (info["tls"], info["tls_verify"]) == (True, False)


def test_plain_ldap_is_refused_unless_allowed_explicitly(mx, ext_ldap):
    """ldap:// without STARTTLS would carry the bind and user passwords in clear."""
    def stored_tls() -> bool:
        return next(d for d in mx.run("list-user-domains")["domains"] if d["name"] == "ext.test")["tls"]

    mx.run("set-user-domain", ext_domain(ext_ldap))
    errors = mx.run("set-user-domain", ext_domain(ext_ldap, tls=False), expect=10)
    assert [(e["field"], e["error"]) for e in errors] == [("tls", "ldap_plaintext_refused")], errors
    assert READER_PW not in json.dumps(errors)
    assert stored_tls() is True  # unchanged
    mx.run("set-user-domain", ext_domain(ext_ldap, tls=False, allow_plaintext=True))
    assert stored_tls() is False
    mx.run("set-user-domain", ext_domain(ext_ldap))


def test_switch_to_external_domain_keeps_the_mailbox(mx, mail, ext_ldap):
    before = f"before-switch-{token()}"
    send25(mail, [f"john@{DOMAIN}"], before)
    wait_for(mail, "john", LOCAL_PW, before)

    mx.run("set-user-domain", ext_domain(ext_ldap))
    domains = {d["name"]: d for d in mx.run("list-user-domains")["domains"]}
    assert domains["local"]["location"] == "internal"
    ext = domains["ext.test"]
    assert ext["location"] == "external" and ext["schema"] == "rfc2307" and ext["url"] == ext_ldap.url
    assert ext["bind_dn"] == EXT_READER and ext["has_password"] is True

    # A switch that fails (postfix refuses the new files) leaves the mounted secret as it was.
    mail.extra_env["MAIL_FAULT_BAD_POSTFIX"] = "1"
    try:
        mx.run("configure-module", {"hostname": "mail.example.org", "user_domain": "ext.test"}, expect=1)
    finally:
        mail.extra_env.pop("MAIL_FAULT_BAD_POSTFIX")
    assert (mail.state_dir / mail.instance / "secrets" / "ldap-bind-password").read_text() == ""
    assert mx.run("get-configuration")["user_domain"]["name"] == "local"

    mx.run("configure-module", {"hostname": "mail.example.org", "user_domain": "ext.test"})
    assert mx.run("get-configuration")["user_domain"]["name"] == "ext.test"

    # The same user name keeps the mailbox: the old message is there, with the new password.
    wait_for(mail, "john", JOHN_EXT_PW, before, timeout=5)
    assert not can_login(mail, "john", LOCAL_PW)

    users = {u["user"]: u for u in mx.run("list-users")["users"]}
    assert set(users) == {"john", "mary"}
    assert users["mary"]["display_name"] == "Mary External" and users["mary"]["groups"] == ["staff"]
    assert [g["group"] for g in mx.run("list-groups")["groups"]] == ["staff"]

    # User and group addresses come from the external domain; a local-only user is gone.
    direct, group = f"ext-direct-{token()}", f"ext-group-{token()}"
    send25(mail, [f"john@{DOMAIN}"], direct)
    send25(mail, [f"staff@{DOMAIN}"], group)
    wait_for(mail, "john", JOHN_EXT_PW, direct)
    wait_for(mail, "john", JOHN_EXT_PW, group)
    wait_for(mail, "mary", MARY_EXT_PW, group)
    assert rcpt(mail, f"extalice@{DOMAIN}") >= 500


def test_daemon_files_get_the_password_from_the_mounted_secret(mx, mail):
    for daemon, path in (("postfix", "/etc/postfix/ldap-users.cf"), ("postfix", "/etc/postfix/ldap-groups.cf"),
                         ("dovecot", "/etc/dovecot/ldap-passdb.conf.ext")):
        assert mail.exec(daemon, "stat", "-c", "%a %U:%G", path).strip() == f"640 root:{daemon}"
    assert mail.exec("postfix", "cat", "/run/secrets/ldap-bind-password") == READER_PW


def test_password_change_of_the_selected_domain_and_event(mx, mail, ext_ldap):
    conn = Connection(Server(ext_ldap.url), EXT_READER, READER_PW, auto_bind=True)
    assert conn.extend.standard.modify_password(EXT_READER, READER_PW, READER_PW2)
    conn.unbind()
    try:
        errors = mx.run("set-user-domain", ext_domain(ext_ldap), expect=10)
        assert errors[0]["field"] == "bind_password"
        mx.run("set-user-domain", ext_domain(ext_ldap, bind_password=READER_PW2))
        mx.run("user-domain-changed", {"domain": "ext.test"})
        mx.run("user-domain-changed", {"domain": "some-other-domain"})  # not the selected one: no-op
        subject = f"after-pw-change-{token()}"
        send25(mail, [f"staff@{DOMAIN}"], subject)
        wait_for(mail, "mary", MARY_EXT_PW, subject)
        # Leaving the password out keeps the stored one.
        mx.run("set-user-domain", {k: v for k, v in ext_domain(ext_ldap).items() if k != "bind_password"})
        assert mail.exec("postfix", "cat", "/run/secrets/ldap-bind-password") == READER_PW2
    finally:
        conn = Connection(Server(ext_ldap.url), EXT_READER, READER_PW2, auto_bind=True)
        conn.extend.standard.modify_password(EXT_READER, READER_PW2, READER_PW)
        conn.unbind()
    mx.run("set-user-domain", ext_domain(ext_ldap))


def test_bind_password_never_leaks(mx, mail):
    state_dir = mail.state_dir / mail.instance
    secrets = {READER_PW, READER_PW2}
    for secret in secrets:
        assert secret not in mx.text, "a bind password was printed by an action"
    for path in [*state_dir.joinpath("db").rglob("*"), *state_dir.joinpath("config").rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets), f"bind password in {path}"
    bind_secrets = list(state_dir.joinpath("secrets").glob("ldap-bind-password*"))
    assert {p.name for p in bind_secrets} == {"ldap-bind-password", "ldap-bind-password-ext.test"}
    for path in bind_secrets:
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert state_dir.joinpath("secrets").stat().st_mode & 0o777 == 0o700
    db = subprocess.run(["sqlite3", str(mail.db_path), ".dump"], capture_output=True, text=True, check=True).stdout
    assert "ext.test" in db and not any(s in db for s in secrets)


def test_active_directory_like_domain(mx, mail, ext_ldap):
    """The "ad" schema against a tree shaped like AD: sAMAccountName, member DNs, a nested group."""
    mx.run("set-user-domain", ad_domain(ext_ldap))
    mx.run("configure-module", {"hostname": "mail.example.org", "user_domain": "ad.test"})
    users = {u["user"]: u for u in mx.run("list-users")["users"]}
    assert set(users) == {"jane", "bob"}, "computer accounts are not users"
    assert users["jane"]["display_name"] == "Jane Doe" and users["jane"]["groups"] == ["team"]
    subject = f"ad-group-{token()}"
    send25(mail, [f"team@{DOMAIN}"], subject)
    wait_for(mail, "jane", JANE_AD_PW, subject)
    wait_for(mail, "bob", BOB_AD_PW, subject)  # through the nested group "ops"
    assert rcpt(mail, f"john@{DOMAIN}") >= 500


def test_switch_back_to_local(mx, mail):
    mx.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local"})
    assert can_login(mail, "john", LOCAL_PW)
    assert not can_login(mail, "john", JOHN_EXT_PW)
    assert {"john", "extalice"} <= {u["user"] for u in mx.run("list-users")["users"]}
    assert mail.exec("postfix", "cat", "/run/secrets/ldap-bind-password") == ""
    subject = f"back-local-{token()}"
    send25(mail, [f"john@{DOMAIN}"], subject)
    wait_for(mail, "john", LOCAL_PW, subject)
