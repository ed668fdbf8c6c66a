"""The action runner on a running instance: first actions, errors, atomicity, crash recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import MAILCTL
from protocol import postfix_reloads, rcpt

pytestmark = pytest.mark.containers


def config_tree(cli) -> dict[str, bytes]:
    """Every rendered file of the current generation, by relative path."""
    current = (cli.state_dir / cli.instance / "config" / "current").resolve()
    return {p.relative_to(current).as_posix(): p.read_bytes() for p in sorted(current.rglob("*")) if p.is_file()}


def db_dump(cli) -> str:
    return subprocess.run(["sqlite3", str(cli.db_path), ".dump"], capture_output=True, text=True,
                          check=True).stdout


def test_configure_module_then_get_configuration(mail):
    mail.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local",
                                  "mail_domain": "example.org"})
    conf = mail.run("get-configuration")
    assert conf["hostname"] == "mail.example.org"
    assert conf["mail_domain"] == "example.org"
    assert conf["user_domain"]["name"] == "local"
    assert conf["configured"] is True
    assert "example.org" in [d["domain"] for d in mail.run("list-domains")]
    out = mail.exec("postfix", "postconf", "-h", "myhostname")
    assert out.strip() == "mail.example.org"


def test_get_defaults_lists_user_domains(mail):
    defaults = mail.run("get-defaults", "")
    assert "." in defaults["hostname"]
    assert "local" in [d["name"] for d in defaults["user_domains"]]


def test_add_domain_is_live_for_smtp_without_reload(mail):
    # Each check uses a new address: smtpd keeps its last address resolution in memory.
    code, msg = rcpt(mail, "probe@live.example.com")
    assert code == 554 and "Relay access denied" in msg
    reloads = postfix_reloads(mail)
    mail.run("add-domain", {"domain": "live.example.com", "addusers": True, "addgroups": True,
                            "catchall": None, "bccaddr": None, "description": "test"})
    code, msg = rcpt(mail, "alice@live.example.com")
    assert "Relay access denied" not in msg, (code, msg)
    assert postfix_reloads(mail) == reloads, "add-domain must not reload postfix"

    mail.run("alter-domain", {"domain": "live.example.com", "description": "changed"})
    listed = {d["domain"]: d for d in mail.run("list-domains")}
    assert listed["live.example.com"]["description"] == "changed"
    assert listed["live.example.com"]["addusers"] is True

    mail.run("remove-domain", {"domain": "live.example.com"})
    code, msg = rcpt(mail, "carol@live.example.com")
    assert code == 554 and "Relay access denied" in msg


def test_set_queue_settings_reloads_postfix(mail):
    reloads = postfix_reloads(mail)
    mail.run("set-queue-settings", {"maximal_queue_lifetime": 48})
    assert mail.run("get-queue-settings") == {"maximal_queue_lifetime": "48"}
    out = mail.exec("postfix", "postconf", "-h", "maximal_queue_lifetime")
    assert out.strip() == "48h"
    assert postfix_reloads(mail) == reloads + 1
    mail.run("set-queue-settings", {"maximal_queue_lifetime": 120})


@pytest.mark.parametrize("action, data, field", [
    ("add-domain", {"domain": "nodot"}, "domain"),
    ("add-domain", {"domain": "ok.example.com", "color": "red"}, "color"),
    ("add-domain", {}, "domain"),
    ("configure-module", {"hostname": "mail.example.org"}, "user_domain"),
    ("configure-module", {"hostname": "localhost", "user_domain": "local"}, "hostname"),
    ("set-queue-settings", {"maximal_queue_lifetime": 0}, "maximal_queue_lifetime"),
    ("set-queue-settings", {"maximal_queue_lifetime": 201}, "maximal_queue_lifetime"),
    ("set-queue-settings", {"maximal_queue_lifetime": "48"}, "maximal_queue_lifetime"),
])
def test_invalid_input_exits_10_naming_the_field(mail, action, data, field):
    before = (db_dump(mail), config_tree(mail))
    r = mail.run(action, data, expect=10)
    errors = json.loads(r.stdout)
    assert isinstance(errors, list) and errors
    assert field in [e["field"] for e in errors], errors
    for e in errors:
        assert set(e) >= {"field", "parameter", "value", "error"}
    assert (db_dump(mail), config_tree(mail)) == before


def test_semantic_errors_exit_10_and_change_nothing(mail):
    mail.run("add-domain", {"domain": "dup.example.com"})
    before = (db_dump(mail), config_tree(mail))
    r = mail.run("add-domain", {"domain": "dup.example.com"}, expect=10)
    assert json.loads(r.stdout)[0]["error"] == "domain_already_exists"
    r = mail.run("alter-domain", {"domain": "dup.example.com", "catchall": {"dtype": "user", "name": "bob"}},
                 expect=10)
    assert json.loads(r.stdout)[0]["field"] == "catchall"
    r = mail.run("remove-domain", {"domain": "nothere.example.com"}, expect=10)
    assert json.loads(r.stdout)[0]["error"] == "domain_not_found"
    assert (db_dump(mail), config_tree(mail)) == before
    mail.run("remove-domain", {"domain": "dup.example.com"})


def test_data_from_file_and_stdin(mail, tmp_path):
    f = tmp_path / "in.json"
    f.write_text(json.dumps({"domain": "file.example.com"}))
    assert mail("run", "add-domain", "--data", f"@{f}").code == 0
    r = mail("run", "remove-domain", "--data", "-", input=json.dumps({"domain": "file.example.com"}))
    assert r.code == 0, r.stderr
    r = mail("run", "list-domains", "--data", "not json")
    assert r.code == 10


def test_unknown_and_unimplemented_actions(mail):
    r = mail("run", "no-such-action")
    assert r.code == 1 and "unknown action" in r.stderr
    listing = mail("actions")
    assert listing.code == 0
    lines = listing.stdout.splitlines()
    assert any(line.startswith("add-domain ") for line in lines)
    missing = [line.split()[0] for line in lines if "[not implemented]" in line]
    # An action not built yet says so (exit 4) once its input is valid, and never fakes success.
    readonly = [a for a in missing if a.startswith(("get-", "list-", "report-"))]
    for action in readonly[:1]:
        r = mail("run", action, "--data", "{}")
        assert r.code == 4 and "not implemented" in r.stderr, (action, r)


def test_failed_config_check_changes_nothing(mail):
    """A value postfix refuses is caught by `postfix check` before anything is applied."""
    before = (db_dump(mail), config_tree(mail))
    env = {"MAIL_FAULT_BAD_POSTFIX": "1"}
    mail.extra_env.update(env)
    try:
        r = mail("run", "set-queue-settings", "--data", json.dumps({"maximal_queue_lifetime": 50}))
    finally:
        for k in env:
            mail.extra_env.pop(k)
    assert r.code == 1
    assert "postfix refused the new configuration" in r.stderr
    assert (db_dump(mail), config_tree(mail)) == before
    assert mail.run("get-queue-settings") == {"maximal_queue_lifetime": "120"}


def test_sigkill_during_reload_leaves_instance_consistent(mail):
    """Kill an action after the swap, before commit: the next action repairs files and daemons."""
    marker = mail.state_dir / mail.instance / "fault-after-swap"
    marker.unlink(missing_ok=True)
    env = {**mail.env, "MAIL_FAULT_PAUSE": "after-swap"}
    proc = subprocess.Popen([MAILCTL, "run", "set-queue-settings", "--data", '{"maximal_queue_lifetime": 77}'],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # The new files are in place but the state is not committed: kill it here.
    assert b"77h" in config_tree(mail)["postfix/main.cf"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    assert mail.run("get-queue-settings") == {"maximal_queue_lifetime": "120"}
    assert b"maximal_queue_lifetime = 120h" in config_tree(mail)["postfix/main.cf"]
    out = mail.exec("postfix", "postconf", "-h", "maximal_queue_lifetime")
    assert out.strip() == "120h"
    mail.run("add-domain", {"domain": "after-crash.example.com"})
    assert "after-crash.example.com" in [d["domain"] for d in mail.run("list-domains")]
    mail.run("remove-domain", {"domain": "after-crash.example.com"})
    generations = list((mail.state_dir / mail.instance / "config").glob("gen-*"))
    assert len(generations) == 1
