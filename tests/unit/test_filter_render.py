"""Filter and DKIM without containers: keys, TXT records, and the rspamd files rendered."""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from mailctl import dkim
from mailctl import filter as flt
from mailctl.context import render_context
from mailctl.domains import delete_domain, new_domain, put_domain, set_signing, signing_domains
from mailctl.render import ConfigTree
from mailctl.settings import Instance
from mailctl.stack import DAEMONS, build_stack
from mailctl.state import DEFAULT_SETTINGS, Store


def setup(tmp_path: Path) -> tuple[Instance, Store]:
    instance = Instance("unit1", state_root=tmp_path)
    s = Store(instance.db_path)
    with s.transaction():
        put_domain(s, new_domain("example.org"))
        put_domain(s, new_domain("example.com"))
    return instance, s


def rendered(s: Store, tmp_path: Path) -> Path:
    return ConfigTree(tmp_path / "config").stage(render_context(s)) / "rspamd"


def test_key_is_rsa_2048_secret_and_matches_the_txt_record(tmp_path):
    instance, s = setup(tmp_path)
    assert dkim.record_data(instance, "example.org") is None
    assert dkim.ensure_key(instance, "example.org") is True
    assert dkim.ensure_key(instance, "example.org") is False  # made once, then kept
    path = dkim.key_path(instance, "example.org")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert key.key_size == 2048
    data = dkim.record_data(instance, "example.org")
    assert data.startswith("v=DKIM1; k=rsa; p=")
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert base64.b64decode(data.split("p=", 1)[1]) == der
    zone = dkim.zone_record("example.org", data)
    assert zone.startswith('default._domainkey.example.org. IN TXT ( "v=DKIM1;')
    strings = re.findall(r'"([^"]*)"', zone)
    assert len(strings) > 1 and all(len(x) <= 255 for x in strings)
    assert "".join(strings) == data


def test_dkim_signing_lists_only_enabled_domains(tmp_path):
    instance, s = setup(tmp_path)
    conf = (rendered(s, tmp_path) / "local.d" / "dkim_signing.conf").read_text()
    assert "enabled = false;" in conf
    with s.transaction():
        set_signing(s, "example.org", True)
    assert signing_domains(s) == ["example.org"]
    conf = (rendered(s, tmp_path) / "local.d" / "dkim_signing.conf").read_text()
    assert "enabled = true;" in conf and "sign_local = false;" in conf and "sign_authenticated = true;" in conf
    assert '"example.org"' in conf and "/var/lib/rspamd/dkim/example.org.default.key" in conf
    assert "example.com" not in conf


def test_removing_a_domain_forgets_its_dkim_state(tmp_path):
    instance, s = setup(tmp_path)
    with s.transaction():
        set_signing(s, "example.org", True)
        delete_domain(s, "example.org")
        put_domain(s, new_domain("example.org"))
    assert signing_domains(s) == []


def test_the_dkim_secrets_dir_is_mounted_into_rspamd_only(tmp_path):
    instance = Instance("unit1", state_root=tmp_path)
    for c in build_stack(instance, "mail.example.org").containers:
        mounts = [m for m in c.mounts if m.target == "/run/secrets/dkim"]
        assert len(mounts) == (1 if c.daemon == "rspamd" else 0), c.daemon
        for m in mounts:
            assert m.read_only and m.source == str(instance.secrets_dir / "dkim")


def test_antispam_thresholds_and_switches_are_rendered(tmp_path):
    _, s = setup(tmp_path)
    actions = (rendered(s, tmp_path) / "local.d" / "actions.conf").read_text()
    assert "reject = 15;" in actions and "add_header = 6;" in actions and "greylist = null;" in actions
    assert "enabled = false;" in (rendered(s, tmp_path) / "local.d" / "greylist.conf").read_text()
    with s.transaction():
        s.set("antispam", {**DEFAULT_SETTINGS["antispam"], "spam_flag_threshold": 0.5,
                           "deny_message_threshold": 9.5, "greylist": {"enabled": True, "threshold": 0.3},
                           "rbl": {"enabled": True, "lists": ["zen.example.net"]}})
    out = rendered(s, tmp_path)
    actions = (out / "local.d" / "actions.conf").read_text()
    assert "reject = 9.5;" in actions and "add_header = 0.5;" in actions and "greylist = 0.3;" in actions
    assert "greylist_min_score = 0.3;" in (out / "local.d" / "greylist.conf").read_text()
    assert 'rbl = "zen.example.net";' in (out / "override.d" / "rbl.conf").read_text()
    assert "MAILCTL_RBL_1" in (out / "local.d" / "rbl_group.conf").read_text()
    with s.transaction():
        s.set("antispam", {**DEFAULT_SETTINGS["antispam"], "enabled": False})
    actions = (rendered(s, tmp_path) / "local.d" / "actions.conf").read_text()
    assert "reject = null;" in actions and "add_header = null;" in actions
    assert "enabled = false;" in (rendered(s, tmp_path) / "local.d" / "rbl.conf").read_text()


def test_antivirus_switch_is_rendered(tmp_path):
    _, s = setup(tmp_path)
    assert "clamav {" in (rendered(s, tmp_path) / "local.d" / "antivirus.conf").read_text()
    with s.transaction():
        s.set("antivirus", {**DEFAULT_SETTINGS["antivirus"], "enabled": False, "clamav_official_sigs": True})
    assert "clamav {" not in (rendered(s, tmp_path) / "local.d" / "antivirus.conf").read_text()
    clamav = tmp_path / "config"
    assert any("Official signatures: on" in p.read_text() for p in clamav.glob("gen-*/clamav/freshclam.conf"))


def test_bypass_rules_are_kept_as_sent_and_rendered_canonical(tmp_path):
    _, s = setup(tmp_path)
    assert not (rendered(s, tmp_path) / "local.d" / "settings.conf").read_text().count("bypass_")
    rules = [{"type": "ip", "direction": "from", "value": "2001:DB8::0:1"},
             {"type": "cidr", "direction": "from", "value": "192.0.2.7/24"},
             {"type": "email", "direction": "from", "value": "Bob@Example.NET"},
             {"type": "domain", "direction": "to", "value": "example.com"}]
    with s.transaction():
        for r in rules:
            assert flt.add_bypass_rule(s, r)
        assert not flt.add_bypass_rule(s, {**rules[2], "value": "bob@example.net"})  # equal in any case
        assert not flt.add_bypass_rule(s, {**rules[0], "value": "2001:db8:0:0:0:0:0:1"})  # any notation
    values = [r["value"] for r in flt.list_bypass_rules(s)]
    assert sorted(values) == sorted(r["value"] for r in rules)  # as the client sent them (NS8)
    out = rendered(s, tmp_path)
    settings = (out / "local.d" / "settings.conf").read_text()
    assert 'from = ["bob@example.net"];' in settings and 'rcpt = ["@example.com"];' in settings
    assert settings.count('symbols_enabled = ["DKIM_SIGNED"]') == 3
    assert 'ip = ["192.0.2.0/24", "2001:db8::1"];' in settings
    with s.transaction():
        assert flt.remove_bypass_rule(s, {**rules[3], "value": "EXAMPLE.com"})
    assert "bypass_recipient" not in (rendered(s, tmp_path) / "local.d" / "settings.conf").read_text()


def test_bypass_rules_change_rspamd_only(tmp_path):
    _, s = setup(tmp_path)
    tree = ConfigTree(tmp_path / "config")
    tree.swap(tree.stage(render_context(s)))
    with s.transaction():
        flt.add_bypass_rule(s, {"type": "email", "direction": "to", "value": "a@example.org"})
    assert tree.changed_daemons(tree.stage(render_context(s)), DAEMONS) == ["rspamd"]


def test_rspamd_url_is_the_admin_ui_proxy_on_the_bind_address_and_offset(tmp_path):
    assert flt.rspamd_url(Instance("u1", state_root=tmp_path, bind="127.0.0.1", port_offset=100),
                          "mail.example.org") == "https://127.0.0.1:9543/rspamd/"
    assert flt.rspamd_url(Instance("u1", state_root=tmp_path), "mail.example.org") == \
        "https://mail.example.org:9443/rspamd/"
    assert flt.rspamd_url(Instance("u1", state_root=tmp_path, bind="::1"), "x.example.org") == \
        "https://[::1]:9443/rspamd/"
