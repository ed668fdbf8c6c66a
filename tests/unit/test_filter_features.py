"""Filter features without containers: signature sets by rating, the resolver setting, and
what is rendered for Bayes, bypass rules (GTUBE), greylisting and relay rule order."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailctl import filter as flt
from mailctl import signatures
from mailctl.context import render_context
from mailctl.errors import ValidationFailed
from mailctl.render import ConfigTree
from mailctl.settings import Instance
from mailctl.state import DEFAULT_SETTINGS, Store


def files(rating: str) -> set[str]:
    return {db["file"] for db in signatures.selected(rating)}


def test_ratings_follow_the_ns8_sets():
    low, medium, high = files("low"), files("medium"), files("high")
    assert {"junk.ndb", "sanesecurity.ftm", "rfxn.ndb", "urlhaus.ndb", "twinclams.ldb"} <= low
    assert "lott.ndb" not in low and "lott.ndb" in medium and "lott.ndb" in high
    assert "foxhole_all.ndb" in high and "foxhole_all.ndb" not in medium
    # LOWMEDIUMONLY: at low and medium, not at high.
    assert "winnow_phish_complete_url.ndb" in low & medium and "winnow_phish_complete_url.ndb" not in high
    assert "winnow_phish_complete.ndb" in high - medium
    assert "scamnailer.ndb" not in high  # DISABLED upstream
    # Subscription-only providers are not there.
    assert not any(f.startswith("securiteinfo") for f in high)


def test_file_types_are_loaded_only_with_the_official_signatures():
    assert "sanesecurity.ftm" not in signatures.loaded("low", official=False)
    assert "sanesecurity.ftm" in signatures.loaded("low", official=True)


def test_a_local_mirror_replaces_every_provider():
    dbs = signatures.selected("low", "http://mirror.lan:8080/sigs/")
    assert all(db["url"].startswith("http://mirror.lan:8080/sigs/") for db in dbs)
    junk = next(db for db in dbs if db["file"] == "junk.ndb")
    assert junk["url"] == "http://mirror.lan:8080/sigs/sanesecurity/junk.ndb"
    rfxn = next(db for db in dbs if db["file"] == "rfxn.ndb")
    assert rfxn["url"] == "http://mirror.lan:8080/sigs/linuxmalwaredetect/maldet-sigpack.tgz"
    assert rfxn["member"] == "rfxn.ndb"
    yar = next(db for db in signatures.selected("high") if db["file"] == "Maldoc_DDE.yar")
    assert yar["url"].endswith("/Yara-Rules/rules/master/maldocs/Maldoc_DDE.yar")


@pytest.mark.parametrize("text,canonical", [
    ("192.0.2.53", "192.0.2.53:53"), ("192.0.2.53:5353", "192.0.2.53:5353"),
    ("[2001:db8::53]:53", "[2001:db8::53]:53"), ("2001:db8::53", "[2001:db8::53]:53"),
    ("dns.example", None), ("192.0.2.53:0", None), ("192.0.2.53:70000", None), ("[2001:db8::1]x", None),
])
def test_resolver_addresses(text, canonical):
    assert flt.parse_resolver(text) == canonical


def rendered(tmp_path: Path, **settings) -> Path:
    s = Store(Instance("unit1", state_root=tmp_path).db_path)
    with s.transaction():
        for key, value in settings.items():
            s.set(key, value)
    return ConfigTree(tmp_path / "config").stage(render_context(s))


def test_bayes_greylist_resolver_and_signature_list_are_rendered(tmp_path):
    spam = {**DEFAULT_SETTINGS["antispam"], "bayes": {"min_learns": 7, "autolearn": True},
            "greylist": {"enabled": True, "threshold": 3, "delay": 42}, "dns_resolver": "192.0.2.53:5353"}
    out = rendered(tmp_path, antispam=spam,
                   antivirus={**DEFAULT_SETTINGS["antivirus"], "third_party_sigs_rating": "medium"})
    bayes = (out / "rspamd/local.d/classifier-bayes.conf").read_text()
    assert "min_learns = 7;" in bayes and "autolearn = true;" in bayes
    grey = (out / "rspamd/local.d/greylist.conf").read_text()
    assert "timeout = 42s;" in grey and "greylist_min_score = 3;" in grey
    assert 'nameserver = ["192.0.2.53:5353"];' in (out / "rspamd/local.d/options.inc").read_text()
    assert (out / "rspamd/dns-resolver").read_text().strip() == "192.0.2.53:5353"
    listed = [line.split("\t")[0] for line in (out / "clamav/third-party.list").read_text().splitlines()
              if line and not line.startswith("#")]
    assert sorted(listed) == sorted(files("medium"))


def test_sender_rate_limit_is_rendered_and_can_be_turned_off(tmp_path):
    default = (rendered(tmp_path / "a") / "rspamd/local.d/ratelimit.conf").read_text()
    assert 'selector = "user.lower";' in default and "burst = 200;" in default and 'rate = "200 / 1h";' in default
    low = {**DEFAULT_SETTINGS["antispam"], "sender_rate_limit": {"enabled": True, "burst": 3, "messages_per_hour": 1}}
    text = (rendered(tmp_path / "b", antispam=low) / "rspamd/local.d/ratelimit.conf").read_text()
    assert "burst = 3;" in text and 'rate = "1 / 1h";' in text
    off = {**low, "sender_rate_limit": {**low["sender_rate_limit"], "enabled": False}}
    text = (rendered(tmp_path / "c", antispam=off) / "rspamd/local.d/ratelimit.conf").read_text()
    assert "authenticated_sender" not in text and "rates {" in text


def test_bypass_rules_reach_the_lua_connection_filter(tmp_path):
    s = Store(Instance("unit1", state_root=tmp_path).db_path)
    with s.transaction():
        flt.add_bypass_rule(s, {"type": "email", "direction": "from", "value": "a@example.net"})
        flt.add_bypass_rule(s, {"type": "domain", "direction": "to", "value": "example.com"})
    lua = (ConfigTree(tmp_path / "config").stage(render_context(s)) / "rspamd/rspamd.local.lua").read_text()
    assert 'map_add_from_ucl({ "a@example.net", }, \'set\'' in lua
    assert '"@example.com"' in lua and "local ips = nil" in lua
    assert "set_flag('skip_process')" in lua


def test_junk_folder_name_drives_imapsieve(tmp_path):
    mailbox = {**DEFAULT_SETTINGS["mailbox_settings"], "spam_folder": {"enabled": True, "name": "Spam"}}
    conf = (rendered(tmp_path, mailbox_settings=mailbox) / "dovecot/dovecot.conf").read_text()
    assert "imapsieve_mailbox1_name = Spam" in conf and "imapsieve_mailbox2_from = Spam" in conf
    assert "imap_sieve" in conf


def test_relay_rule_order_restriction_is_in_both_recipient_lists(tmp_path):
    main = (rendered(tmp_path) / "postfix/main.cf").read_text()
    assert main.count("check_recipient_access sqlite:/etc/postfix/sqlite-relay-order.cf") == 2
    # a message with both is split by recipient (relay_split), then routed by the sender rule
    assert "relay_sender_first = check_sender_access sqlite:/etc/postfix/sqlite-relay-sender-split.cf" in main
    assert "relay_sender_route = check_sender_access sqlite:/etc/postfix/sqlite-relay-sender-filter.cf" in main
    assert "relay_split_destination_recipient_limit = 1" in main
    master = (rendered(tmp_path) / "postfix/master.cf").read_text()
    assert "-o relay_sender_first=$relay_sender_route" in master and "127.0.0.1:10027 inet" in master


class Ctx:
    """What apply_filter_change uses of an action context: the store and reject()."""

    def __init__(self, store: Store):
        self.store = store

    def reject(self, field, error, value, message):
        raise ValidationFailed([{"field": field, "parameter": field.rsplit(".", 1)[-1], "value": value,
                                 "error": error}])


def test_a_bad_resolver_is_refused_naming_the_field_and_a_good_one_is_stored_canonical(tmp_path):
    s = Store(Instance("unit1", state_root=tmp_path).db_path)
    with pytest.raises(ValidationFailed) as refused:
        with s.transaction():
            flt.apply_filter_change(Ctx(s), {"antispam": {"enabled": True, "dns_resolver": "resolver.lan"}})
    assert refused.value.errors[0]["field"] == "antispam.dns_resolver"
    assert flt.antispam(s)["dns_resolver"] == ""
    with s.transaction():
        flt.apply_filter_change(Ctx(s), {"antispam": {"enabled": True, "dns_resolver": "192.0.2.53"}})
    assert flt.antispam(s)["dns_resolver"] == "192.0.2.53:53"
    assert flt.antispam(s)["greylist"]["delay"] == 300 and flt.antispam(s)["bayes"]["min_learns"] == 20
