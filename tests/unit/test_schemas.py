"""The action schemas: well formed, every $ref resolvable, strict, and right on examples.

No containers needed: only the files under actions/ and `mailctl.schemas`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from mailctl import schemas

# Every action of /work/shared/API.md (the action catalogue).
API_ACTIONS = [
    # life cycle and events
    "create-module", "destroy-module", "configure-module", "get-configuration", "get-defaults", "get-facts",
    "import-module", "restore-module", "clone-module", "certificate-changed", "user-domain-changed",
    # user domains
    "list-user-domains", "set-user-domain", "add-user", "alter-user", "remove-user", "set-user-password",
    "add-group", "alter-group", "remove-group", "list-users", "list-groups",
    # domains
    "add-domain", "alter-domain", "remove-domain", "list-domains", "get-domain-dkim", "set-domain-dkim",
    # addresses
    "add-address", "alter-address", "remove-address", "list-addresses", "list-destinations",
    # mailboxes
    "list-user-mailboxes", "alter-user-mailbox", "set-mailbox-enabled", "add-public-mailbox",
    "alter-public-mailbox", "remove-public-mailbox", "list-public-mailboxes", "list-acl-subjects",
    "get-mailbox-settings", "set-mailbox-settings", "get-master-users", "set-master-users",
    "reveal-master-credentials",
    # filter
    "get-filter-configuration", "set-filter-configuration", "list-bypass-rules", "add-bypass-rule",
    "remove-bypass-rule",
    # queue
    "report-queue-status", "flush-postfix-queue", "get-queue-settings", "set-queue-settings", "trace-message",
    # relay
    "list-relay-rules", "add-relay-rule", "alter-relay-rule", "remove-relay-rule", "get-relay-configuration",
    "set-relay-configuration", "get-always-bcc", "set-always-bcc",
]
READ_ONLY = [a for a in API_ACTIONS
             if a.startswith(("get-", "list-", "report-", "reveal-")) and a != "get-domain-dkim"]
SCHEMA_FILES = sorted(schemas.ACTIONS_DIR.glob("*/validate-*.json"))
DEFINITIONS = schemas.ACTIONS_DIR / "definitions.json"


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every subschema (dict) of a schema document."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _load_from_disk(uri: str) -> Resource:
    assert uri.startswith("file://"), f"non-file $ref {uri}"
    return Resource.from_contents(json.loads(Path(uri.removeprefix("file://")).read_text()),
                                  default_specification=DRAFT7)


@pytest.mark.parametrize("path", [*SCHEMA_FILES, DEFINITIONS], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_schema_is_draft7_and_every_ref_resolves(path: Path) -> None:
    schema = json.loads(path.read_text())
    Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert "$id" not in schema, "the loader sets base URIs from file paths"
    assert "$ref" not in schema, "a root $ref hides the base URI (draft 7): wrap it in allOf"
    resolver = Registry(retrieve=_load_from_disk).resolver(base_uri=path.resolve().as_uri())
    refs = [sub["$ref"] for sub in _walk(schema) if "$ref" in sub]
    for ref in refs:
        assert resolver.lookup(ref).contents, ref
    # Strict objects: no unknown fields anywhere.
    for sub in _walk(schema):
        if sub.get("type") == "object":
            assert sub.get("additionalProperties") is False, f"{path}: object without additionalProperties"


def test_every_api_action_has_both_schemas() -> None:
    missing = [a for a in API_ACTIONS
               if not all((schemas.ACTIONS_DIR / a / f).is_file()
                          for f in ("validate-input.json", "validate-output.json"))]
    assert missing == []
    assert set(API_ACTIONS) <= set(schemas.action_names())
    assert schemas.action_names() == sorted(schemas.action_names())


@pytest.mark.parametrize("action", API_ACTIONS)
def test_input_schema_has_title_and_one_line_description(action: str) -> None:
    schema = json.loads(schemas.schema_path(action, "input").read_text())
    assert schema["title"] == action
    description = schemas.describe(action)
    assert description and "\n" not in description and description == schema["description"]


@pytest.mark.parametrize("action", API_ACTIONS)
@pytest.mark.parametrize("kind", ["input", "output"])
def test_validators_load(action: str, kind: str) -> None:
    validator = schemas.load_validator(action, kind)
    assert validator is schemas.load_validator(action, kind)  # cached
    assert validator.format_checker is not None
    for data in ({}, "", None, [], {"x": 1}):  # walks the root $refs: they must resolve
        list(validator.iter_errors(data))


@pytest.mark.parametrize("action", READ_ONLY)
def test_read_only_actions_accept_no_input(action: str) -> None:
    validator = schemas.load_validator(action, "input")
    for data in ({}, "", None):
        assert validator.is_valid(data), (action, data)
    assert not validator.is_valid({"unexpected": 1})
    assert not validator.is_valid("text")


def test_format_checks_really_run() -> None:
    checker = schemas.format_checker()
    assert {"email", "hostname", "ipv4", "ipv6"} <= set(checker.checkers)
    for fmt, good, bad in [
        ("hostname", "mail.example.com", "bad_host!.example.com"),
        ("hostname", "mail", "-mail.example.com"),
        ("email", "john@example.com", "john.example.com"),
        ("email", "archive@piler1", "john doe@example.com"),
        ("ipv4", "192.0.2.1", "192.0.2.256"),
        ("ipv6", "2001:db8::1", "2001:db8::g"),
    ]:
        validator = Draft7Validator({"format": fmt}, format_checker=checker)
        assert validator.is_valid(good), (fmt, good)
        assert not validator.is_valid(bad), (fmt, bad)


RELAY = {"rule_type": "sender", "rule_subject": "foo.com", "host": "smtp.domain.com", "port": 587,
         "mandatory_tls": True, "username": "foo@domain.com", "password": "password", "enabled": True}

EXAMPLES: dict[str, tuple[list[Any], list[Any]]] = {
    "configure-module": (
        [{"hostname": "mail.example.com", "user_domain": "local", "mail_domain": "example.com"},
         {"hostname": "Mail.Example.org", "user_domain": "ad.dom.test"}],
        [{"hostname": "mail", "user_domain": "local"},                        # no dot
         {"hostname": "mail..example.com", "user_domain": "local"},
         {"hostname": "-mail.example.com", "user_domain": "local"},
         {"user_domain": "local"},                                            # missing required
         {"hostname": "mail.example.com"},
         {"hostname": "mail.example.com", "user_domain": "local", "mail_domain": "example"},
         {"hostname": "mail.example.com", "user_domain": "local", "extra": True},
         "", None]),
    "add-domain": (
        [{"domain": "example.com"},
         {"domain": "mydom.test", "addusers": False, "addgroups": True,
          "catchall": {"dtype": "user", "name": "administrator"}, "bccaddr": "spy@example.com",
          "description": "Temporary domain with catchall configuration"},
         {"domain": "great.example.com", "addusers": True, "catchall": None, "bccaddr": None},
         {"domain": "x.example.com", "catchall": {"dtype": "public", "name": "blackhole"}},
         {"domain": "x.example.com", "catchall": {"dtype": "external", "name": "a@example.net"}}],
        [{"domain": "example"},
         {"domain": "Example..com"},
         {"domain": "example.com", "unknown": 1},
         {"addusers": True},
         {"domain": "example.com", "bccaddr": "not-an-email"},
         {"domain": "example.com", "bccaddr": "a@b"},
         {"domain": "example.com", "catchall": {"dtype": "mailbox", "name": "bob"}},
         {"domain": "example.com", "catchall": {"dtype": "user", "name": "bad name"}},
         {"domain": "example.com", "catchall": {"dtype": "external", "name": "bob"}},
         {"domain": "example.com", "catchall": {"dtype": "user"}},
         {"domain": "example.com", "description": "x" * 257},
         {"domain": "example.com", "description": "two\nlines"},
         {"domain": "example.com", "addusers": "yes"}]),
    "set-queue-settings": (
        [{"maximal_queue_lifetime": 1}, {"maximal_queue_lifetime": 120}, {"maximal_queue_lifetime": 200}],
        [{"maximal_queue_lifetime": 0}, {"maximal_queue_lifetime": 201}, {"maximal_queue_lifetime": "120"},
         {"maximal_queue_lifetime": 12.5}, {}, {"maximal_queue_lifetime": 5, "other": 1}]),
    "add-address": (
        [{"local": "info", "atype": "domain", "domain": "mydom.test",
          "destinations": [{"dtype": "user", "name": "admin"}]},
         {"local": "sales.team-1+x", "atype": "wildcard", "internal": True, "description": "Sales",
          "destinations": [{"dtype": "group", "name": "sales"}, {"dtype": "external", "name": "a@example.org"},
                           {"dtype": "public", "name": "invoices"}]}],
        [{"local": ".info", "atype": "wildcard", "destinations": [{"dtype": "user", "name": "u"}]},
         {"local": "info.", "atype": "wildcard", "destinations": [{"dtype": "user", "name": "u"}]},
         {"local": "in..fo", "atype": "wildcard", "destinations": [{"dtype": "user", "name": "u"}]},
         {"local": "in fo", "atype": "wildcard", "destinations": [{"dtype": "user", "name": "u"}]},
         {"local": "info", "atype": "domain", "destinations": [{"dtype": "user", "name": "u"}]},
         {"local": "info", "atype": "wildcard", "domain": "a.test", "destinations": [{"dtype": "user", "name": "u"}]},
         {"local": "info", "atype": "wildcard", "destinations": []},
         {"local": "info", "atype": "wildcard"},
         {"local": "info", "atype": "adduser", "destinations": [{"dtype": "user", "name": "u"}]},
         {"local": "info", "atype": "wildcard", "destinations": [{"dtype": "mailbox", "name": "u"}]},
         {"local": "info", "atype": "wildcard", "destinations": [{"dtype": "external", "name": "nobody"}]},
         {"local": "info", "atype": "wildcard", "destinations": [{"dtype": "user", "name": "u"}], "x": 1}]),
    "add-relay-rule": (
        [RELAY,
         {**RELAY, "rule_subject": "john@foo.com", "mandatory_tls": False, "username": "", "password": ""},
         {**RELAY, "rule_type": "wildcard", "rule_subject": "*"},
         {**RELAY, "rule_type": "recipient", "rule_subject": "foo2.com", "host": "192.0.2.10"},
         {k: v for k, v in RELAY.items() if k not in ("username", "password")}],
        [{**RELAY, "port": 0}, {**RELAY, "port": 70000}, {**RELAY, "port": "587"},
         {**RELAY, "rule_type": "wildcard"},                                  # subject must be *
         {**RELAY, "rule_subject": "*"},
         {**RELAY, "rule_subject": "not a subject"},
         {**RELAY, "host": "smtp"},                                           # no dot
         {**RELAY, "rule_type": "default"},
         {k: v for k, v in RELAY.items() if k != "mandatory_tls"},
         {**RELAY, "has_password": True}]),
    "add-bypass-rule": (
        [{"type": "ip", "direction": "from", "value": "9.9.9.9"},
         {"type": "ip", "direction": "from", "value": "2001:db8::1"},
         {"type": "cidr", "direction": "from", "value": "10.0.0.0/8"},
         {"type": "cidr", "direction": "from", "value": "2001:db8::/32"},
         {"type": "email", "direction": "to", "value": "importantclient@domain.com"},
         {"type": "domain", "direction": "from", "value": "nicedomain.org"}],
        [{"type": "ip", "direction": "from", "value": "300.1.1.1"},
         {"type": "ip", "direction": "from", "value": "10.0.0.0/8"},
         {"type": "ip", "direction": "to", "value": "9.9.9.9"},
         {"type": "cidr", "direction": "from", "value": "10.0.0.0/33"},
         {"type": "cidr", "direction": "from", "value": "10.0.0.0"},
         {"type": "cidr", "direction": "from", "value": "2001:db8::/129"},
         {"type": "cidr", "direction": "from", "value": "2001:db8:::/64"},
         {"type": "email", "direction": "to", "value": "foo"},
         {"type": "domain", "direction": "from", "value": "-bad-.example.com"},
         {"type": "domain", "direction": "both", "value": "example.com"},
         {"type": "host", "direction": "from", "value": "example.com"},
         {"type": "domain", "direction": "from"},
         {"type": "domain", "direction": "from", "value": "example.com", "x": 1}]),
    "set-filter-configuration": (
        [{}, {"antispam": {"enabled": False}, "antivirus": {"enabled": False}},
         {"antivirus": {"enabled": True, "clamav_official_sigs": True, "third_party_sigs_rating": "high"}},
         {"antispam": {"enabled": True, "spam_flag_threshold": 6, "deny_message_threshold": 20.5,
                       "greylist": {"enabled": True, "threshold": 4},
                       "rbl": {"enabled": True, "lists": ["zen.spamhaus.org"]}}}],
        [{"antispam": {}}, {"antivirus": {"enabled": True, "third_party_sigs_rating": "extreme"}},
         {"antispam": {"enabled": True, "spam_flag_threshold": -1}},
         {"antispam": {"enabled": True, "rspamd_url": 42}},
         {"antispam": {"enabled": True, "greylist": {"threshold": 4}}},
         {"antispam": {"enabled": True, "rbl": {"enabled": True, "lists": ["zen"]}}},
         {"antivirus": {"enabled": "yes"}}, {"firewall": {}}]),
    "alter-user-mailbox": (
        [{"user": "administrator", "quota": {"limit": 1024}, "forward": {"destinations": []}},
         {"user": "first.user", "quota": {"custom": False}, "spam_retention": {"custom": False}},
         {"user": "u1", "quota": {"limit": 0, "custom": True}, "spam_retention": {"value": 15, "custom": True},
          "forward": {"destinations": [{"dtype": "external", "name": "john@example.com"}], "keepcopy": True}}],
        [{"user": "u1", "quota": {}}, {"user": "u1", "quota": {"custom": False, "limit": 10}},
         {"user": "u1", "quota": {"limit": -1}}, {"user": "u1", "spam_retention": {"value": -1}},
         {"user": "u1", "forward": {"destinations": [{"dtype": "mailbox", "name": "x"}]}},
         {"user": "u1", "forward": {"destinations": [{"dtype": "external", "name": "john"}]}},
         {"user": "u1", "forward": [{"dtype": "user", "name": "x"}]}, {"quota": {"limit": 1}},
         {"user": "bad user"},
         {"user": "u1", "unknown": True}]),
    "set-relay-configuration": (
        [{"networks": ["192.168.12.42", "10.77.4.0/24", "2001:db8::/64", "::1"], "postfix_restricted_sender": True},
         {"networks": []}, {}],
        [{"networks": ["10.77.4.0/24x"]}, {"networks": ["10.1.2.3/40"]}, {"networks": ["fe80::1%eth0"]},
         {"networks": ["example.com"]}, {"networks": "10.0.0.0/8"}, {"postfix_restricted_sender": "on"}]),
    "flush-postfix-queue": (
        [{"queue": "8A14E1012A58", "action": "resend"}, {"queue": "", "action": "delete_all"}],
        [{"queue": "", "action": "delete"}, {"queue": "8A14E1012A58", "action": "purge"},
         {"queue": "8A14E1012A58"}, {"queue": "8A14/E10", "action": "delete"}]),
    "set-always-bcc": (
        [{"bcc": ""}, {"bcc": "archive@piler1"}, {"bcc": "archive@example.com"},
         {"bcc_archive": "archive@example.com"}],
        [{}, {"bcc": "archive"}, {"bcc": "a@example.com", "bcc_archive": "a@example.com"}]),
}


@pytest.mark.parametrize("action", sorted(EXAMPLES))
def test_examples(action: str) -> None:
    validator = schemas.load_validator(action, "input")
    valid, invalid = EXAMPLES[action]
    for data in valid:
        assert list(validator.iter_errors(data)) == [], (action, data)
    for data in invalid:
        assert not validator.is_valid(data), (action, data)


def test_outputs_of_written_handlers() -> None:
    """Shapes the first handlers return (get-configuration returns the user domain object, like NS8)."""
    local = {"name": "local", "schema": "rfc2307", "location": "internal", "url": "ldap://openldap",
             "base_dn": "dc=mail,dc=local"}
    cases = {
        "get-configuration": [{"hostname": "mail.example.com", "mail_domain": "example.com",
                               "user_domain": local, "configured": True},
                              {"hostname": "mail.example.com", "mail_domain": "", "user_domain": "local",
                               "configured": False}],
        "get-defaults": [{"hostname": "mail.example.com", "mail_domain": "example.com", "user_domains": [local]}],
        "list-domains": [[{"domain": "example.com", "addusers": True, "addgroups": True, "catchall": None,
                           "bccaddr": None, "description": "", "dkim": {"enabled": False}}], []],
        "get-queue-settings": [{"maximal_queue_lifetime": "120"}],
        "add-domain": [{}, None],
    }
    for action, outputs in cases.items():
        validator = schemas.load_validator(action, "output")
        for data in outputs:
            assert list(validator.iter_errors(data)) == [], (action, data)
    # NS8's type: a string of digits
    assert not schemas.load_validator("get-queue-settings", "output").is_valid({"maximal_queue_lifetime": 120})
