"""Refused passwords never come back in the NS8 error list (value or message)."""

from __future__ import annotations

import json

import pytest

from mailctl import runner
from mailctl.errors import ValidationFailed
from mailctl.redact import REDACTED, redact_errors
from mailctl.settings import Instance


def _refused(tmp_path, action, data):
    instance = Instance(name="redact", state_root=tmp_path)
    with pytest.raises(ValidationFailed) as err:
        runner.run_action(instance, action, data)
    return err.value.errors


@pytest.mark.parametrize("action, data, secret", [
    ("add-user", {"user": "john", "password": "short1"}, "short1"),  # too short: minLength
    ("add-user", {"user": "john", "password": "bad\u0001password"}, "bad\u0001password"),  # pattern
    ("set-user-password", {"user": "john", "password": "tiny"}, "tiny"),
    ("set-user-domain", {"name": "ext", "schema": "rfc2307", "url": "ldaps://ldap.example.org",
                         "base_dn": "dc=example,dc=org", "bind_password": "S3cretBindPw"}, "S3cretBindPw"),
    ("add-relay-rule", {"rule_type": "sender", "rule_subject": "a@example.org", "host": "smtp.example.org",
                        "port": 587, "mandatory_tls": True, "username": "u", "password": "RelayPw1234",
                        "enabled": True, "unknown": 1}, "RelayPw1234"),
])
def test_validation_errors_do_not_echo_secrets(tmp_path, action, data, secret):
    errors = _refused(tmp_path, action, data)
    assert errors, "the input must be refused"
    text = json.dumps(errors)
    assert secret not in text and json.dumps(secret)[1:-1] not in text
    for error in errors:
        assert set(error) >= {"field", "parameter", "value", "error"}


def test_redaction_keeps_the_field_and_error_code():
    errors = [{"field": "password", "parameter": "password", "value": "abc",
               "error": "password_minLength", "message": "'abc' is too short"},
              {"field": "", "parameter": "", "value": None, "error": "input_anyOf",
               "message": "{'user': 'x', 'password': 'hunter22'} is not valid"},
              {"field": "user", "parameter": "user", "value": "x", "error": "user_pattern", "message": "'x' bad"}]
    out = redact_errors(errors, {"user": "x", "password": "hunter22"})
    assert out[0] == {"field": "password", "parameter": "password", "value": REDACTED,
                      "error": "password_minLength", "message": "the value of password is not valid"}
    assert "hunter22" not in out[1]["message"]
    assert out[2] == errors[2]  # other fields untouched


def test_the_schema_error_list_itself_is_redacted():
    """Callers that validate without running (the HTTP task route) get a redacted list too."""
    errors = runner.validation_errors("add-user", "input", {"user": "john", "password": "short1"})
    assert errors and "short1" not in json.dumps(errors)
