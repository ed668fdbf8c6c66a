"""Open-relay guard and configuration injection: wide public networks, map comments, $ expansion."""

from __future__ import annotations

import pytest

from mailctl import relayaccess, relayrules
from mailctl.context import render_context
from mailctl.errors import ValidationFailed
from mailctl.render import ConfigTree, postfix_value
from mailctl.state import Store


def _reject(field, error, value=None, message=""):
    raise ValidationFailed([{"field": field, "parameter": field, "value": value, "error": error}])


@pytest.mark.parametrize("networks", [["0.0.0.0/1", "128.0.0.0/1"], ["0.0.0.0/0"], ["10.0.0.0/7"],
                                      ["::/1", "8000::/1"], ["2000::/3"], ["2a00::/16"], ["12.0.0.0/6"]])
def test_public_networks_wider_than_a_site_are_refused(networks):
    with pytest.raises(ValidationFailed) as err:
        relayaccess.normalize_networks(networks, _reject)
    assert err.value.errors[0]["error"] == "networks_open_relay"
    assert err.value.errors[0]["field"] == "networks.0"


def test_site_networks_are_accepted():
    ok = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "18.0.0.0/8", "203.0.113.0/24",
          "fc00::/7", "2001:db8::/32", "2a01:4f8::/32", "198.51.100.7"]
    assert relayaccess.normalize_networks(ok, _reject) == ok


@pytest.mark.parametrize("subject", ["#x@example.org", "#@example.org"])
def test_a_relay_subject_cannot_comment_out_the_credentials_map(subject):
    data = {"rule_type": "sender", "rule_subject": subject, "host": "smtp.example.net", "port": 587,
            "mandatory_tls": True, "username": "u", "password": "secret-pw", "enabled": True}
    with pytest.raises(ValidationFailed) as err:
        relayrules.normalize(data, _reject)
    assert err.value.errors[0]["error"] == "rule_subject_invalid"
    rule = {**data, "has_password": True}
    with pytest.raises(ValueError):  # and the map writer never writes such a line
        relayrules.sasl_map([rule], {relayrules.rule_key(rule): "secret-pw"})


def test_dollar_in_an_address_is_not_expanded_by_postfix(tmp_path):
    assert postfix_value("a$myhostname@example.org") == "a$$myhostname@example.org"
    with pytest.raises(ValueError):
        postfix_value("a@example.org\nrelayhost = evil.example.net")
    store = Store(tmp_path / "db" / "state.sqlite")
    with store.transaction():
        store.set("always_bcc", "arch${mydomain}$myhostname@example.org")
    staged = ConfigTree(tmp_path / "config").stage(render_context(store))
    lines = (staged / "postfix" / "main.cf").read_text().splitlines()
    assert "always_bcc = arch$${mydomain}$$myhostname@example.org" in lines
