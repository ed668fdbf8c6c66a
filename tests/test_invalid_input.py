"""Property: invalid input of any kind exits 10 with a well-formed error list and changes nothing."""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mailctl import schemas
from mailctl.errors import ValidationFailed
from mailctl.runner import run_action
from mailctl.settings import Instance

pytestmark = pytest.mark.containers

# A valid input for each action under test: mutations of it make the invalid ones.
VALID = {
    "add-domain": {"domain": "prop.example.com", "addusers": True, "addgroups": False, "catchall": None,
                   "bccaddr": None, "description": "x"},
    "configure-module": {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": "example.org"},
    "set-queue-settings": {"maximal_queue_lifetime": 48},
    "add-address": {"local": "info", "atype": "domain", "domain": "example.org",
                    "destinations": [{"dtype": "user", "name": "john"}], "internal": False},
    "add-user": {"user": "prop", "password": "Secret123!", "display_name": "P"},
    "set-relay-configuration": {"networks": ["10.1.2.0/24", "2001:db8::/32"], "postfix_restricted_sender": True},
    "add-relay-rule": {"rule_type": "sender", "rule_subject": "a@example.org", "host": "smtp.example.net",
                       "port": 587, "mandatory_tls": True, "enabled": True},
}

junk = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**6, max_value=10**6), st.floats(allow_nan=False),
    st.text(max_size=30), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                                                max_size=2),
    st.sampled_from(["", "nodot", "a b@c", "999.1.1.1/33", "-bad-.com", "x" * 300, "'; DROP TABLE domains;--",
                     "::g", "10.0.0.0/99", "ÿ@ÿ"]),
)


@st.composite
def invalid_inputs(draw):
    action = draw(st.sampled_from(sorted(VALID)))
    data = copy.deepcopy(VALID[action])
    how = draw(st.sampled_from(["extra", "drop", "replace", "wrong-top"]))
    if how == "extra":
        data[draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in data))] = draw(junk)
    elif how == "drop":
        schema = schemas.load_schema(action, "input")
        required = _required(schema)
        if not required:
            data["unknown_field"] = 1
        else:
            data.pop(draw(st.sampled_from(sorted(required))))
    elif how == "replace":
        data[draw(st.sampled_from(sorted(data)))] = draw(junk)
    else:
        data = draw(st.one_of(st.lists(st.integers(), max_size=2), st.integers(), st.text(min_size=1, max_size=5)))
    return action, data


names = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)


@st.composite
def semantically_invalid(draw):
    """Inputs that pass the schema but that the handler refuses inside the transaction."""
    name = draw(names)
    return draw(st.sampled_from([
        ("configure-module", {"hostname": f"{name}.example.org", "user_domain": f"nope{name}"}),
        ("alter-domain", {"domain": f"{name}.missing.example", "description": "x"}),
        ("remove-domain", {"domain": f"{name}.missing.example"}),
        ("add-domain", {"domain": f"{name}.example.com", "addusers": True,
                        "catchall": {"dtype": "user", "name": name}}),
        ("set-queue-settings", {"maximal_queue_lifetime": draw(st.integers(min_value=201, max_value=10**9))}),
    ]))


def _required(schema) -> list[str]:
    if "required" in schema:
        return schema["required"]
    for part in schema.get("allOf", []):
        if "required" in part:
            return part["required"]
    return []


def _snapshot(instance: Instance) -> tuple[str, dict[str, bytes]]:
    conn = sqlite3.connect(instance.db_path)
    dump = "\n".join(conn.iterdump())
    conn.close()
    config = instance.config_dir
    files = {p.relative_to(config).as_posix(): p.read_bytes() for p in sorted(config.rglob("*")) if p.is_file()}
    return dump, files


@pytest.fixture(scope="module")
def instance(mail) -> Instance:
    return Instance(name=mail.instance, state_root=Path(mail.state_dir), bind=mail.bind,
                    port_offset=mail.port_offset)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.one_of(invalid_inputs(), semantically_invalid()))
def test_invalid_inputs_exit_10_and_change_nothing(instance, case):
    action, data = case
    # A mutation can be valid by chance (a junk string in a free-text field): not a case.
    assume(action not in VALID or not schemas.load_validator(action, "input").is_valid(data))
    before = _snapshot(instance)
    with pytest.raises(ValidationFailed) as caught:
        run_action(instance, action, data)
    errors = caught.value.errors
    assert caught.value.exit_code == 10
    assert isinstance(errors, list) and errors
    for e in errors:
        assert set(e) >= {"field", "parameter", "value", "error"}, e
        assert isinstance(e["field"], str) and isinstance(e["error"], str) and e["error"]
        json.dumps(e)  # serialisable as the CLI prints it
    assert _snapshot(instance) == before
