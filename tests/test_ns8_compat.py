"""NS8 compatibility: the calls a NethServer 8 cluster manager makes, and the shapes it expects.

- Every input example of ns8-mail's actions (tests/ns8/input-examples.json) is accepted:
  by the input schema, and by the running instance (one case per example), except the
  few that NS8's own handlers refuse too, which are refused cleanly here (exit 10, the
  field named) and listed in docs/api.md.
- Every output validates against tests/ns8/outputs.json: schemas written from NS8's
  validate-output.json files and handlers, as strict (no property NS8 does not write,
  save the extensions docs/api.md lists).
- The scenarios of ns8-mail's tests/40__api (group "domain admins", the postmaster public
  mailbox, list-addresses records, bypass values, filter settings), with real SMTP/IMAP.
- The Redis agent answers the same NS8 task payloads with the same stored outputs.
"""

from __future__ import annotations

import json
import smtplib
from pathlib import Path

import pytest
from conftest import ROOT
from jsonschema import Draft7Validator, FormatChecker
from protocol import HOST, imaps, inbox_subjects, insecure_tls, message, token, wait_for
from test_agent import push, queue, result  # noqa: F401 - `queue` is the agent fixture

from mailctl import filter as flt
from mailctl import runner, schemas
from mailctl.state import Store

NS8 = Path(__file__).parent / "ns8"
EXAMPLES: dict[str, list] = json.loads((NS8 / "input-examples.json").read_text())["examples"]
STRICT = json.loads((NS8 / "outputs.json").read_text())
PASSWORD = "Nethesis,1234"
# Input of the output-shape checks for the actions that need one (the others get "").
INPUTS = {"get-domain-dkim": {"domain": "example.org"}}

# NS8 actions about backup snapshots (restic): their examples name a cluster's backup
# destination, so they are checked by schema here; test_restic_backup carries them out on a
# real repository and checks their outputs' shapes (assert_ns8_shape).
BACKUP_ACTIONS = {"restore-backup-content", "seek-snapshot-contents"}
NOT_AVAILABLE = {a for a in EXAMPLES if a not in schemas.action_names()}
# Examples NS8's own handlers cannot carry out: refused here with exit 10 naming the field,
# by the input schema (a bypass rule for a recipient IP: NS8 has no map for it, its handler
# raises) or by the state (objects these examples name that do not exist here).
REFUSED_BY_SCHEMA = {("add-bypass-rule", 0): "direction", ("remove-bypass-rule", 0): "direction"}
REFUSED = {**REFUSED_BY_SCHEMA,
           ("configure-module", 0): "user_domain",  # no user domain ad.dom.test on this host
           ("flush-postfix-queue", 0): "queue"}     # no queued message CB22E1099547
USERS = {"admin": "Builtin administrator user", "administrator": "Administrator", "boss": "Boss",
         "jsmith": "John Smith", "john": "John", "u1": "First User", "u2": "Second User"}
GROUPS = {"employees": ("Employees", ["boss", "u1"]), "g1": ("Group One", ["u1"]),
          "domain admins": ("Domain Admins", ["administrator", "u2"])}
DOMAIN, TEST_DOMAIN = "example.org", "mydom.test"


def strict_validator(action: str) -> Draft7Validator:
    schema = {**STRICT["outputs"][action], "$defs": STRICT["$defs"]}
    return Draft7Validator(schema, format_checker=FormatChecker())


def assert_ns8_shape(action: str, output) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in strict_validator(action).iter_errors(output)]
    assert not errors, (action, errors[:5])


def example_cases(live: bool = False) -> list:
    skip = NOT_AVAILABLE | (BACKUP_ACTIONS if live else set())
    return [pytest.param(action, i, id=f"{action}-{i}") for action, examples in sorted(EXAMPLES.items())
            if action not in skip for i in range(len(examples))]


# ---- without containers ------------------------------------------------------------------

@pytest.mark.parametrize("action, index", example_cases())
def test_input_example_is_valid(action, index):
    errors = schemas.validation_errors(action, "input", runner.normalize_input(EXAMPLES[action][index]))
    if (action, index) in REFUSED_BY_SCHEMA:
        assert [e["field"] for e in errors] == [REFUSED_BY_SCHEMA[(action, index)]], errors
    else:
        assert errors == [], errors


def test_every_missing_ns8_action_is_documented_as_not_available():
    docs = (ROOT / "docs" / "api.md").read_text()
    assert NOT_AVAILABLE <= BACKUP_ACTIONS, NOT_AVAILABLE  # every other NS8 action exists
    for action in NOT_AVAILABLE:
        line = next((row for row in docs.splitlines() if f"`{action}`" in row), "")
        assert "not yet available" in line, action


def test_filter_defaults_are_ns8s(tmp_path):
    store = Store(tmp_path / "state.sqlite")
    assert flt.antivirus(store)["third_party_sigs_rating"] == "medium"
    spam = flt.antispam(store)
    assert (spam["spam_flag_threshold"], spam["deny_message_threshold"], spam["greylist"]["enabled"]) == (6, 15, False)


def test_strict_schemas_accept_ns8s_own_output_examples():
    """The strict schemas are NS8's shapes: the (valid) examples NS8 documents pass them."""
    facts = {
        "list-bypass-rules": {"bypass_rules": [{"value": "nicedomain.org", "type": "domain", "direction": "from"},
                                               {"value": "9.9.9.9", "type": "ip", "direction": "to"}]},
        "get-mailbox-settings": {"spam_retention": {"value": 0}, "spam_folder": {"enabled": False},
                                 "quota": {"limit": 0}, "sharedseen": {"enabled": False},
                                 "spam_prefix": {"enabled": False}},
        "list-addresses": {"adduser_domains": ["mydom.test"], "addgroup_domains": [], "addresses": [
            {"atype": "adduser", "local": "first.user", "description": "First User"},
            {"local": "info", "atype": "domain", "domain": "mydom.test",
             "destinations": [{"dtype": "user", "name": "admin", "ui_name": "Builtin administrator user"}]}]},
        "get-domain-dkim": {"enabled": False},
    }
    for action, output in facts.items():
        assert_ns8_shape(action, output)
    assert not strict_validator("list-addresses").is_valid(  # an automatic address has no destinations
        {"adduser_domains": [], "addgroup_domains": [], "addresses": [
            {"atype": "adduser", "local": "u1", "description": "U", "destinations": []}]})


# ---- on the running instance --------------------------------------------------------------

@pytest.fixture(scope="module")
def ns8(mail):
    """The shared instance with the users, groups and domain NS8's examples and tests name."""
    mail.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": DOMAIN})
    for user, display in USERS.items():
        mail.run("add-user", {"user": user, "password": PASSWORD, "display_name": display})
    for group, (description, members) in GROUPS.items():
        mail.run("add-group", {"group": group, "description": description, "members": members})
    mail.run("add-domain", {"domain": TEST_DOMAIN, "addusers": True, "addgroups": True})
    yield mail
    mail.run("remove-domain", {"domain": TEST_DOMAIN}, expect=None)
    for group in GROUPS:
        mail.run("remove-group", {"group": group}, expect=None)
    for user in USERS:
        mail.run("remove-user", {"user": user}, expect=None)


def _relay_rule(subject: str, rule_type: str = "sender") -> dict:
    return {"rule_type": rule_type, "rule_subject": subject, "host": "smtp.domain.com", "port": 587,
            "mandatory_tls": False, "username": "", "password": "", "enabled": False}


def _prepare(cli, action: str, example) -> list:
    """Make what the example refers to; return the calls that undo the example and that."""
    undo: list = []
    if action in ("add-address", "alter-address", "remove-address"):
        key = {k: example[k] for k in ("atype", "local", "domain") if k in example}
        if action != "add-address":
            cli.run("add-address", {**key, "destinations": [{"dtype": "user", "name": "u1"}]})
        undo.append(("remove-address", key))
    elif action in ("add-bypass-rule", "remove-bypass-rule"):
        if action == "remove-bypass-rule":
            cli.run("add-bypass-rule", example)
        undo.append(("remove-bypass-rule", example))
    elif action in ("add-domain", "alter-domain", "remove-domain"):
        if action != "add-domain":
            cli.run("add-domain", {"domain": example["domain"]})
        undo.append(("remove-domain", {"domain": example["domain"]}))
    elif action in ("add-public-mailbox", "alter-public-mailbox", "remove-public-mailbox"):
        names = [m["mailbox"] for m in example] if isinstance(example, list) else [example["mailbox"]]
        if action != "add-public-mailbox":
            for name in names:
                cli.run("add-public-mailbox", {"mailbox": name, "acls": []})
        undo += [("remove-public-mailbox", {"mailbox": name}) for name in names]
    elif action in ("add-relay-rule", "alter-relay-rule", "remove-relay-rule"):
        if action == "alter-relay-rule":
            cli.run("add-relay-rule", {**example, "host": "smtp2.domain.com"})
        elif action == "remove-relay-rule":
            subject = example["rule_subject"]
            cli.run("add-relay-rule", _relay_rule(subject, "wildcard" if subject == "*" else "sender"))
        undo.append(("remove-relay-rule", {"rule_subject": example["rule_subject"]}))
    elif action == "alter-user-mailbox":
        undo.append(("alter-user-mailbox", {"user": example["user"], "quota": {"custom": False}}))
    elif action == "set-mailbox-enabled":
        undo.append(("set-mailbox-enabled", {"user": example["user"], "enabled": True}))
    elif action == "set-domain-dkim":
        undo.append(("set-domain-dkim", {"domain": example["domain"], "enabled": False}))
    elif action == "set-queue-settings":
        undo.append((action, {"maximal_queue_lifetime": int(cli.run("get-queue-settings")["maximal_queue_lifetime"])}))
    elif action == "set-filter-configuration":
        current = cli.run("get-filter-configuration")  # sent back as it is: NS8 clients do
        undo.append((action, {"antispam": current["antispam"], "antivirus": current["antivirus"]}))
    elif action.startswith("set-"):
        undo.append((action, cli.run(action.replace("set-", "get-", 1))))
    return undo


@pytest.mark.containers
@pytest.mark.parametrize("action, index", example_cases(live=True))
def test_input_example_is_carried_out(ns8, action, index):
    example = EXAMPLES[action][index]
    if (action, index) in REFUSED:
        r = ns8.run(action, example, expect=10)
        assert [e["field"] for e in r.json()] == [REFUSED[(action, index)]]
        return
    undo = _prepare(ns8, action, example)
    try:
        output = ns8.run(action, example)
        if action in STRICT["outputs"]:
            assert_ns8_shape(action, output)
    finally:
        for step, data in reversed(undo):
            ns8.run(step, data, expect=None)


def _send(cli, rcpts: list[str], subject: str) -> None:
    """From outside, MTA to MTA (port 25)."""
    with smtplib.SMTP(HOST, cli.port(25), timeout=20) as s:
        s.ehlo("client.example.net")
        s.send_message(message("someone@example.net", rcpts[0], subject), "someone@example.net", rcpts)


def _submit(cli, user: str, rcpt: str, subject: str) -> None:
    """As an authenticated user (port 587, STARTTLS)."""
    with smtplib.SMTP(HOST, cli.port(587), timeout=20) as s:
        s.starttls(context=insecure_tls())
        s.login(user, PASSWORD)
        s.send_message(message(f"{user}@{DOMAIN}", rcpt, subject), f"{user}@{DOMAIN}", [rcpt])


@pytest.fixture(scope="module")
def populated(ns8):
    """State with one of each record kind, set up as ns8-mail's API tests do."""
    cli = ns8
    steps = [
        ("add-address", {"atype": "domain", "local": "u1-alias", "domain": TEST_DOMAIN,
                         "destinations": [{"dtype": "user", "name": "u1"}]}),
        ("add-address", {"atype": "domain", "local": "admins", "domain": TEST_DOMAIN,
                         "destinations": [{"dtype": "group", "name": "domain admins"}]}),
        ("add-address", {"atype": "domain", "local": "mailadm", "domain": TEST_DOMAIN,
                         "destinations": [{"dtype": "public", "name": "vmail+postmaster"}]}),
        ("add-address", {"atype": "domain", "local": "sales", "domain": TEST_DOMAIN, "internal": True,
                         "destinations": [{"dtype": "user", "name": "u1"}, {"dtype": "user", "name": "u2"}]}),
        ("add-address", {"atype": "wildcard", "local": "info", "destinations": [{"dtype": "user", "name": "u2"}]}),
        ("alter-address", {"atype": "adduser", "local": "u2", "internal": True}),
        ("add-public-mailbox", {"mailbox": "employees", "acls": [
            {"stype": "user", "subject": {"name": "u1", "dtype": "user"}, "rights": {"rtype": "full"}},
            {"stype": "group", "subject": {"name": "domain admins", "dtype": "group"}, "rights": {"rtype": "rw"}}]}),
        ("add-bypass-rule", {"type": "ip", "direction": "from", "value": "2345:0425:2CA1:0000:0000:0567:5673:23b5"}),
        ("add-bypass-rule", {"type": "cidr", "direction": "from", "value": "2001:db8:1234::/48"}),
        ("add-bypass-rule", {"type": "domain", "direction": "from", "value": "Customer.Domain.test"}),
        ("add-relay-rule", {"rule_type": "recipient", "rule_subject": "queue.example.net", "host": "127.0.0.1",
                            "port": 1, "mandatory_tls": False, "username": "", "password": "", "enabled": True}),
        ("alter-user-mailbox", {"user": "u1", "forward": {"destinations": [{"dtype": "user", "name": "administrator"}],
                                                          "keepcopy": True}}),
    ]
    for action, data in steps:
        cli.run(action, data)
    yield cli
    undo = [("remove-address", {k: a[k] for k in ("atype", "local", "domain") if k in a})
            for step, a in steps if step == "add-address"]
    undo += [("remove-bypass-rule", rule) for step, rule in steps if step == "add-bypass-rule"]
    undo += [("alter-address", {"atype": "adduser", "local": "u2", "internal": False}),
             ("remove-public-mailbox", {"mailbox": "employees"}),
             ("remove-relay-rule", {"rule_subject": "queue.example.net"}),
             ("alter-user-mailbox", {"user": "u1", "forward": {"destinations": []}}),
             ("flush-postfix-queue", {"queue": "", "action": "delete_all"})]
    for action, data in undo:
        cli.run(action, data, expect=None)


@pytest.mark.containers
def test_every_output_has_ns8s_shape(populated):
    # a message waiting in the queue (its relay host refuses connections)
    _submit(populated, "u1", "someone@queue.example.net", f"queued {token()}")
    wait_for(lambda: populated.run("report-queue-status")["queue_status"], "a deferred message")
    for action in STRICT["outputs"]:
        if action == "alter-domain" or action in BACKUP_ACTIONS:
            continue  # an input example above; a backup to read
        assert_ns8_shape(action, populated.run(action, INPUTS.get(action, "")))


@pytest.mark.containers
def test_list_addresses_records_are_ns8s(populated):
    listed = populated.run("list-addresses", "")
    addresses = listed["addresses"]
    assert TEST_DOMAIN in listed["adduser_domains"] and TEST_DOMAIN in listed["addgroup_domains"]
    assert {"atype": "adduser", "local": "u1", "description": "First User"} in addresses
    assert {"atype": "adduser", "local": "u2", "description": "Second User", "internal": True} in addresses
    assert {"atype": "addgroup", "local": "g1", "description": "Group One"} in addresses
    assert {"atype": "addgroup", "local": "domain admins", "description": "Domain Admins"} in addresses
    assert {"atype": "wildcard", "local": "info",
            "destinations": [{"dtype": "user", "name": "u2", "ui_name": "Second User"}]} in addresses
    assert {"atype": "domain", "local": "mailadm", "domain": TEST_DOMAIN,
            "destinations": [{"dtype": "public", "name": "postmaster"}]} in addresses
    sales = next(a for a in addresses if a["local"] == "sales")
    assert sales["internal"] is True and "description" not in sales
    postmaster = next(a for a in addresses if a["local"] == "postmaster" and a["atype"] == "wildcard")
    assert postmaster["destinations"] == [{"dtype": "public", "name": "postmaster"}]
    assert postmaster["delete_forbidden"] is True
    # destinations are named as list-destinations names them
    picks = {(d["dtype"], d["name"]) for d in populated.run("list-destinations", "")}
    for a in addresses:
        for d in a.get("destinations", []):
            assert (d["dtype"], d["name"]) in picks, d


@pytest.mark.containers
def test_group_with_a_space_receives_mail_and_gets_public_mailbox_rights(populated):
    subject = f"admins {token()}"
    _send(populated, [f"admins@{TEST_DOMAIN}"], subject)
    for member in ("administrator", "u2"):
        wait_for(lambda m=member: inbox_subjects(populated, m, PASSWORD, subject), f"delivery to {member}")
    assert inbox_subjects(populated, "u1", PASSWORD, subject) == 0
    listed = {m["mailbox"]: m for m in populated.run("list-public-mailboxes", "")}
    assert {(a["stype"], a["subject"]["name"], a["rights"]["rtype"]) for a in listed["employees"]["acls"]} == {
        ("user", "u1", "full"), ("group", "domain admins", "rw")}
    with imaps(populated, "u2", PASSWORD) as imap:  # a member of "domain admins"
        assert any(b"Public/employees" in line for line in imap.list()[1])
    with imaps(populated, "boss", PASSWORD) as imap:
        assert not any(b"Public/employees" in line for line in imap.list()[1])


@pytest.mark.containers
def test_postmaster_is_a_builtin_public_mailbox(populated):
    assert {"mailbox": "postmaster", "acls": []} in populated.run("list-public-mailboxes", "")
    assert {"dtype": "public", "name": "postmaster"} in populated.run("list-destinations", "")
    before = _public_messages(populated, "postmaster")
    _send(populated, [f"postmaster@{DOMAIN}", f"mailadm@{TEST_DOMAIN}"], f"to postmaster {token()}")
    wait_for(lambda: _public_messages(populated, "postmaster") >= before + 1, "delivery to postmaster")
    r = populated.run("remove-public-mailbox", {"mailbox": "postmaster"}, expect=10)
    assert r.json()[0]["field"] == "mailbox"
    # an empty ACL list is accepted, and a list of mailboxes removed at once (NS8's forms)
    populated.run("add-public-mailbox", {"mailbox": "orphantest", "acls": []})
    assert {"mailbox": "orphantest", "acls": []} in populated.run("list-public-mailboxes", "")
    populated.run("remove-public-mailbox", [{"mailbox": "orphantest"}])
    assert "orphantest" not in [m["mailbox"] for m in populated.run("list-public-mailboxes", "")]


def _public_messages(cli, mailbox: str) -> int:
    out = cli.exec("dovecot", "doveadm", "mailbox", "status", "-u", "vmail", "messages", mailbox)
    return int(out.split("messages=")[1]) if "messages=" in out else 0


@pytest.mark.containers
def test_bypass_values_kept_as_sent_and_matched_in_any_case(populated):
    rules = populated.run("list-bypass-rules", "")["bypass_rules"]
    values = {r["value"] for r in rules}
    assert {"2345:0425:2CA1:0000:0000:0567:5673:23b5", "2001:db8:1234::/48", "Customer.Domain.test"} <= values
    same = {"type": "ip", "direction": "from", "value": "2345:425:2ca1::567:5673:23b5"}
    assert populated.run("add-bypass-rule", same, expect=10).json()[0]["error"] == "bypass_rule_already_exists"
    populated.run("remove-bypass-rule", {"type": "domain", "direction": "from", "value": "customer.domain.TEST"})
    populated.run("add-bypass-rule", {"type": "domain", "direction": "from", "value": "Customer.Domain.test"})


@pytest.mark.containers
def test_filter_settings_as_ns8_sends_them(populated):
    before = populated.run("get-filter-configuration", "")
    try:
        populated.run("set-filter-configuration", {"antivirus": {"enabled": False}, "antispam": {"enabled": False}})
        populated.run("set-filter-configuration", {
            "antivirus": {"enabled": True, "clamav_official_sigs": False, "third_party_sigs_rating": "high"},
            "antispam": {"enabled": True, "greylist": {"enabled": True, "threshold": 3.32},
                         "spam_flag_threshold": 6.2, "deny_message_threshold": 15.72,
                         "prefix_email_subject": {"enabled": True, "prefix": "spAM!"}}})
        got = populated.run("get-filter-configuration", "")
        assert_ns8_shape("get-filter-configuration", got)
        spam = got["antispam"]
        assert (spam["greylist"]["threshold"], spam["spam_flag_threshold"], spam["deny_message_threshold"]) == (
            3.32, 6.2, 15.72)
        assert spam["prefix_email_subject"] == {"enabled": True, "prefix": "spAM!"}
        assert populated.run("get-mailbox-settings", "")["spam_prefix"] == {"enabled": True, "prefix": "spAM!"}
        assert got["antivirus"]["third_party_sigs_rating"] == "high"
    finally:
        populated.run("set-filter-configuration", {"antispam": before["antispam"], "antivirus": before["antivirus"]})


# ---- the Redis agent ----------------------------------------------------------------------

def _stable(action: str, output):
    """An output without what changes from one call to the next (ClamAV's memory in use, the
    signature update job's and the DNS probe's last results)."""
    if action == "get-filter-configuration":
        output["antivirus"].get("memory_info", {}).pop("used", None)
        output["antivirus"].pop("signature_updates", None)
        output["antispam"].pop("dns", None)
    return output


@pytest.mark.containers
def test_agent_answers_ns8_task_payloads_as_the_cli(populated, queue):  # noqa: F811
    client, _, _ = queue

    def task(action: str, data) -> dict:
        return result(client, push(client, action, data, instance=populated.instance), timeout=60,
                      instance=populated.instance)

    for action in [a for a in STRICT["outputs"] if a != "alter-domain" and a not in BACKUP_ACTIONS]:
        data = INPUTS.get(action, "")
        res = task(action, data)
        assert res["exit_code"] == "0", (action, res)
        assert _stable(action, json.loads(res["output"])) == _stable(action, populated.run(action, data)), action
    # NS8 examples through the queue: the same stored outputs and errors as over the CLI
    example = EXAMPLES["add-domain"][1]
    try:
        assert task("add-domain", example)["exit_code"] == "0"
        res = task("alter-domain", EXAMPLES["alter-domain"][1])
        assert res["exit_code"] == "0", res
        assert json.loads(res["output"]) == populated.run("alter-domain", EXAMPLES["alter-domain"][1])
        assert_ns8_shape("alter-domain", json.loads(res["output"]))
    finally:
        populated.run("remove-domain", {"domain": example["domain"]}, expect=None)
    refused = task("add-bypass-rule", EXAMPLES["add-bypass-rule"][0])
    assert refused["exit_code"] == "10"
    cli = populated.run("add-bypass-rule", EXAMPLES["add-bypass-rule"][0], expect=10).json()
    assert json.loads(refused["output"]) == cli
