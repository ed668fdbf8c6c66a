"""Rendering of the user domain's LDAP files (no containers): both schemas, TLS, and no
bind password ever in a rendered file; and the reload scripts' secret substitution.

There is no Active Directory server here: its schema is checked on the rendered files.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mailctl.context import render_context
from mailctl.render import render_into
from mailctl.state import Store

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-never-rendered"


def render(tmp_path: Path, domain: dict) -> dict[str, str]:
    """Render every file with `domain` as the selected external user domain."""
    store = Store(tmp_path / "db" / "state.sqlite")
    try:
        with store.transaction():
            store.set("external_user_domains", [domain])
            store.set("user_domain", domain["name"])
        out = tmp_path / "out"
        render_into(out, render_context(store))
    finally:
        store.close()
    return {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*") if p.is_file()}


def settings(text: str) -> dict[str, str]:
    """`key = value` lines of a postfix/dovecot LDAP file."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


AD = {"name": "corp.example", "schema": "ad", "url": "ldaps://dc1.corp.example", "base_dn": "dc=corp,dc=example",
      "bind_dn": "cn=mail,cn=Users,dc=corp,dc=example", "tls": False}
RFC2307 = {"name": "ext", "schema": "rfc2307", "url": "ldap://ldap.example.net:389", "base_dn": "dc=example,dc=net",
           "bind_dn": "cn=reader,dc=example,dc=net", "tls": True}


def test_active_directory_schema(tmp_path):
    files = render(tmp_path, AD)
    users = settings(files["postfix/ldap-users.cf"])
    assert users["server_host"] == "ldaps://dc1.corp.example"
    assert users["query_filter"] == "(&(&(objectClass=user)(!(objectClass=computer)))(sAMAccountName=%u))"
    assert users["result_attribute"] == "sAMAccountName"
    assert users["bind"] == "yes" and users["bind_dn"] == AD["bind_dn"]
    assert users["bind_pw"] == "__SECRET_ldap-bind-password__"
    assert "start_tls" not in users  # ldaps:// is TLS already

    groups = settings(files["postfix/ldap-groups.cf"])
    # Members are DNs: followed recursively; names come from leaf (user) entries only.
    assert groups["query_filter"] == "(&(objectClass=group)(sAMAccountName=%u)(member=*))"
    assert groups["special_result_attribute"] == "member"
    assert groups["leaf_result_attribute"] == "sAMAccountName"
    assert "result_attribute" not in groups, "a group must not yield its own name"
    assert groups["result_format"] == "%s@mailbox.internal"

    passdb = settings(files["dovecot/ldap-passdb.conf.ext"])
    assert passdb["uris"] == "ldaps://dc1.corp.example"
    assert passdb["pass_filter"] == "(&(&(objectClass=user)(!(objectClass=computer)))(sAMAccountName=%Ln))"
    assert passdb["pass_attrs"] == "sAMAccountName=user"
    assert passdb["auth_bind"] == "yes"
    assert passdb["dn"] == AD["bind_dn"]
    assert passdb["dnpass"] == '"__SECRET_ldap-bind-password__"'
    assert passdb["tls_require_cert"] == "never" and "tls" not in passdb
    assert PASSWORD not in "".join(files.values())


def test_rfc2307_schema_with_starttls(tmp_path):
    files = render(tmp_path, RFC2307)
    users = settings(files["postfix/ldap-users.cf"])
    assert users["query_filter"] == "(&(objectClass=posixAccount)(uid=%u))"
    assert users["start_tls"] == "yes"
    groups = settings(files["postfix/ldap-groups.cf"])
    assert groups["query_filter"] == "(&(objectClass=posixGroup)(cn=%u))"
    assert groups["result_attribute"] == "memberUid"
    assert "special_result_attribute" not in groups
    passdb = settings(files["dovecot/ldap-passdb.conf.ext"])
    assert passdb["pass_filter"] == "(&(objectClass=posixAccount)(uid=%Ln))"
    assert passdb["tls"] == "yes"


@pytest.mark.parametrize("verify", [False, True])
def test_certificate_checks_follow_tls_verify(tmp_path, verify):
    files = render(tmp_path, {**RFC2307, "tls_verify": verify})
    ca = "/etc/ssl/certs/ca-certificates.crt"
    expected = ("yes", ca) if verify else (None, None)
    for name in ("postfix/ldap-users.cf", "postfix/ldap-groups.cf", "postfix/ldap-sender-login.cf"):
        table = settings(files[name])
        assert (table.get("tls_require_cert"), table.get("tls_ca_cert_file")) == expected
    passdb = settings(files["dovecot/ldap-passdb.conf.ext"])
    assert passdb["tls_require_cert"] == ("demand" if verify else "never")
    assert passdb.get("tls_ca_cert_file") == (ca if verify else None)
    assert settings(files["dovecot/acl-groups.conf"])["tls_verify"] == ("yes" if verify else "no")
    # libldap's own defaults (/etc/ldap/ldap.conf in the dovecot container): dovecot's
    # tls_require_cert alone did not let STARTTLS to a self-signed server through.
    client = dict(line.split(" ", 1) for line in files["dovecot/ldap-client.conf"].splitlines()
                  if line and not line.startswith("#"))
    assert client == {"TLS_REQCERT": "demand" if verify else "never", "TLS_CACERT": ca}


def test_embedded_domain_is_read_as_the_reader_never_anonymously(tmp_path):
    store = Store(tmp_path / "state.sqlite")
    try:
        out = tmp_path / "out"
        render_into(out, render_context(store))
    finally:
        store.close()
    for name in ("postfix/ldap-users.cf", "postfix/ldap-groups.cf", "postfix/ldap-sender-login.cf"):
        table = settings((out / name).read_text())
        assert (table["bind"], table["bind_dn"]) == ("yes", "cn=reader,dc=mail,dc=local")
        assert table["bind_pw"] == "__SECRET_ldap-reader-password__"
    passdb = settings((out / "dovecot/ldap-passdb.conf.ext").read_text())
    assert (passdb["dn"], passdb["dnpass"]) == ("cn=reader,dc=mail,dc=local", '"__SECRET_ldap-reader-password__"')
    acl = settings((out / "dovecot/acl-groups.conf").read_text())
    assert acl["binddn"] == "cn=reader,dc=mail,dc=local"
    slapd = (out / "openldap/slapd.conf").read_text()
    assert "disallow bind_anon" in slapd and "by * read" not in slapd


def fill(tmp_path: Path, daemon: str, template: str, secret: str) -> str:
    """Run `fill_secrets` (images/common/lib.sh) as images/<daemon>/reload does, with a fake /run/secrets."""
    assert ". /usr/local/lib/mail/lib.sh" in (ROOT / "images" / daemon / "reload").read_text()
    script = (ROOT / "images" / "common" / "lib.sh").read_text()
    start = script.index("fill_secrets() {")
    function = script[start:script.index("\n}\n", start) + 3].replace("/run/secrets/", f"{tmp_path}/secrets/")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "ldap-bind-password").write_text(secret)
    (tmp_path / "conf").mkdir()
    target = tmp_path / "conf" / "file.conf"
    target.write_text(template)
    quote = "quote" if daemon == "dovecot" else ""
    code = f"set -euo pipefail\nchown() {{ :; }}\n{function}\nfill_secrets {tmp_path}/conf root {quote}\n"
    subprocess.run(["bash", "-c", code], check=True)
    assert target.stat().st_mode & 0o777 == 0o640
    return target.read_text()


SPECIALS = r"""p&a/s\s|w#o 'r"d$1%u\n&\\"""


def test_postfix_fill_secrets_is_literal(tmp_path):
    out = fill(tmp_path, "postfix", "bind = yes\nbind_pw = __SECRET_ldap-bind-password__\n", SPECIALS)
    assert out == f"bind = yes\nbind_pw = {SPECIALS}\n"


@pytest.mark.parametrize("secret", [SPECIALS, ""])
def test_dovecot_fill_secrets_escapes_for_quotes(tmp_path, secret):
    out = fill(tmp_path, "dovecot", 'dn = cn=x\ndnpass = "__SECRET_ldap-bind-password__"\n', secret)
    escaped = secret.replace("\\", "\\\\").replace('"', '\\"')
    assert out == f'dn = cn=x\ndnpass = "{escaped}"\n'


def test_probe_refuses_a_url_ldap3_cannot_parse():
    """Found by the schemathesis run: the schema's URL pattern lets this through, ldap3 raises."""
    from mailctl.external_ldap import probe

    problem = probe("ldap://[:.5C5CaC:]:6/", "dc=example,dc=org", timeout=1)
    assert problem is not None and (problem.field, problem.error) == ("url", "ldap_url_invalid")
