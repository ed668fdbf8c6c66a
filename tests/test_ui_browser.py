"""The web UI in a real browser: Debian's chromium driven by Playwright, against `mailctl serve`.

One fresh instance (ports +23000) and its HTTPS server serve every test of this module, in
order: log in, first-configuration wizard, then one feature per test. After each step the
state seen by `mailctl run list-...` must match what the page did; wrong input in a form
must show the action's field error next to the field and change nothing. Every page visited
is saved as a PNG under tests/screenshots/ (ignored by git).
"""

from __future__ import annotations

import json
import os
import smtplib
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright
from protocol import HOST, message, token, wait_for
from webserver import start_server

pytestmark = pytest.mark.containers

CHROMIUM = os.environ.get("MAIL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# A port of the test range where nothing listens: the relay target of a "stopped" destination.
CLOSED_PORT = int(os.environ.get("MAIL_TEST_UI_CLOSED_PORT", "3499"))
SHOTS = Path(__file__).resolve().parent / "screenshots"
DOMAIN = "uitest.example"
TIMEOUT_MS = 60_000  # generous: the test host may be shared and busy
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def ui(fresh_instance):
    """A fresh (unconfigured) instance with users and a group, and its admin server."""
    cli = fresh_instance("ui1", 23000)
    cli.run("add-user", {"user": "alice", "password": "Alice-pass-1", "display_name": "Alice"})
    cli.run("add-user", {"user": "bob", "password": "Bob-pass-12", "display_name": "Bob"})
    cli.run("add-group", {"group": "staff", "members": ["alice", "bob"]})
    server = start_server(cli, cli.state_dir)
    try:
        yield cli, server.url, server.admin_password()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(ui):
    """One headless chromium page for the whole module."""
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        yield pg
        browser.close()
        assert not errors, f"JavaScript errors in the pages: {errors}"


def shot(pg, name: str) -> None:
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def goto(pg, base: str, route: str) -> None:
    """Open a page and wait until it is drawn. Chromium aborts a navigation when the host's
    network interfaces change (another test's containers starting): load it again then."""
    for attempt in range(3):
        try:
            pg.goto(f"{base}/{route}")
            break
        except PlaywrightError as exc:
            if "ERR_NETWORK_CHANGED" not in str(exc) or attempt == 2:
                raise
    expect(pg.locator(f"#main[data-ready='{route}']")).to_be_attached()


def row(pg, table: str, text: str):
    return pg.locator(f"#{table} tbody tr", has_text=text)


def row_action(pg, table: str, text: str, action: str) -> None:
    r = row(pg, table, text)
    r.locator("summary").click()
    r.get_by_role("menuitem", name=action).click()


def confirm(pg, label: str) -> None:
    pg.locator("#confirm-dialog").get_by_role("button", name=label).click()


def save_dialog(pg, action: str) -> None:
    pg.locator(f"#dialog-{action} .dialog-buttons .primary").click()


def field_error(pg, scope: str, path: str):
    return pg.locator(f"{scope} [data-path='{path}'] > .error")


UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => el.type !== 'hidden' && !el.closest('[hidden]'))
    .filter((el) => !el.labels?.length && !el.getAttribute('aria-label'))
    .map((el) => el.id || el.name || el.outerHTML.slice(0, 80))"""


def unlabelled(pg) -> list[str]:
    """Form fields without a <label for> (or aria-label) on the page and its open dialogs."""
    return pg.evaluate(UNLABELLED)


def expected_errors(cli, action: str, data: dict, field: str) -> set[str]:
    """The error codes the action itself gives for `field` (the CLI's exit-10 list)."""
    r = cli.run(action, data, expect=10)
    return {e["error"] for e in json.loads(r.stdout) if e["field"] == field}


def shown_errors(error) -> set[str]:
    """The error codes a field's error box shows."""
    return set((error.get_attribute("data-error") or "").split())


# ---- the steps, in order ---------------------------------------------------------------------


def test_login(ui, page):
    cli, base, password = ui
    page.goto(base + "/")
    expect(page.locator("#login-form")).to_be_visible()
    shot(page, "login")
    page.fill("#login-username", "admin")
    page.fill("#login-password", "not-the-password")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("Wrong user name or password")
    page.fill("#login-password", password)
    page.click("#login-form button[type=submit]")
    # A fresh instance is not configured: the app opens the wizard.
    expect(page.locator("#main[data-ready='wizard']")).to_be_attached()


def test_first_configuration_wizard(ui, page):
    cli, base, _ = ui
    assert cli.run("get-configuration")["configured"] is False
    expect(page.locator("#f-configure-module-hostname")).not_to_have_value("")
    shot(page, "wizard")
    page.fill("#f-configure-module-hostname", f"mail.{DOMAIN}")
    page.fill("#f-configure-module-mail_domain", DOMAIN)
    page.select_option("#f-configure-module-user_domain", label="local (embedded LDAP)")
    page.get_by_role("button", name="Configure").click()
    expect(page.locator("#main[data-ready='status']")).to_be_attached()
    config = cli.run("get-configuration")
    assert config["configured"] is True and config["hostname"] == f"mail.{DOMAIN}"
    assert DOMAIN in [d["domain"] for d in cli.run("list-domains")]
    # The status page shows every container running and healthy.
    containers = json.loads(cli("status", "--json").stdout)
    expect(page.locator("#containers tbody tr")).to_have_count(len(containers))
    expect(page.locator("#containers")).not_to_contain_text("unhealthy")
    expect(page.locator("#counters")).to_contain_text("Domains")
    expect(page.locator("#module-version")).to_have_text((Path(__file__).parents[1] / "VERSION").read_text().strip())
    shot(page, "status")
    expect(page.locator("#nav")).not_to_contain_text("First configuration")


def test_wrong_input_shows_field_error_and_changes_nothing(ui, page):
    cli, base, _ = ui
    before = cli.run("list-domains")
    goto(page, base, "domains")
    page.click("#add-domain")
    page.fill("#f-add-domain-domain", "Not A Domain!")
    save_dialog(page, "add-domain")
    error = field_error(page, "#dialog-add-domain", "domain")
    expect(error).to_be_visible()
    codes = expected_errors(cli, "add-domain", {"domain": "Not A Domain!", "addusers": True, "addgroups": False,
                                                "catchall": None}, "domain")
    assert codes and shown_errors(error) == codes
    shot(page, "domains-error")
    page.locator("#dialog-add-domain").get_by_role("button", name="Cancel").click()
    assert cli.run("list-domains") == before


def test_add_domain_and_read_dkim(ui, page):
    cli, base, _ = ui
    goto(page, base, "domains")
    page.click("#add-domain")
    page.fill("#f-add-domain-domain", "second.example")
    page.fill("#f-add-domain-description", "Second domain")
    save_dialog(page, "add-domain")
    expect(row(page, "domains", "second.example")).to_be_visible()
    listed = {d["domain"]: d for d in cli.run("list-domains")}
    assert listed["second.example"]["description"] == "Second domain"

    # DKIM: off for a new domain; enabling it makes the key and the dialog shows its record.
    row_action(page, "domains", "second.example", "Configure DKIM")
    assert cli.run("get-domain-dkim", {"domain": "second.example"})["enabled"] is False
    expect(page.locator("#dkim-no-key")).to_be_visible()
    page.locator("#dialog-dkim").get_by_role("button", name="Enable DKIM").click()
    expect(page.locator("#dkim-record")).not_to_have_value("")
    dkim = cli.run("get-domain-dkim", {"domain": "second.example"})
    assert dkim["enabled"] is True and dkim["dkimRecordData"].startswith("v=DKIM1;")
    expect(page.locator("#dkim-name")).to_have_value("default._domainkey.second.example")
    expect(page.locator("#dkim-record")).to_have_value(dkim["dkimRecordData"])
    shot(page, "domains-dkim")
    page.locator("#dialog-dkim").get_by_role("button", name="Close").click()
    expect(row(page, "domains", "second.example")).to_contain_text("On")
    goto(page, base, "domains")
    shot(page, "domains")


def test_add_address_with_two_destinations(ui, page):
    cli, base, _ = ui
    goto(page, base, "addresses")
    page.click("#add-address")
    scope = "#dialog-add-address"
    page.fill("#f-add-address-local", "sales")
    page.select_option("#f-add-address-domain", label=DOMAIN)
    page.select_option("#f-add-address-destinations-0-dtype", label="User mailbox")
    page.fill("#f-add-address-destinations-0-name", "alice")
    page.click("#f-add-address-destinations-add")
    page.select_option("#f-add-address-destinations-1-dtype", label="External address")
    page.fill("#f-add-address-destinations-1-name", "far@stopped.example")
    page.fill("#f-add-address-description", "Sales team")
    assert unlabelled(page) == []
    shot(page, "addresses-add")
    save_dialog(page, "add-address")
    expect(page.locator(scope)).to_have_count(0)
    expect(row(page, "addresses", f"sales@{DOMAIN}")).to_be_visible()
    address = next(a for a in cli.run("list-addresses")["addresses"] if a["local"] == "sales")
    assert address["atype"] == "domain" and address["domain"] == DOMAIN
    assert {(d["dtype"], d["name"]) for d in address["destinations"]} == {
        ("user", "alice"), ("external", "far@stopped.example")}
    # Search in the page finds it among the automatic user addresses.
    page.fill("#addresses-search", "sales")
    expect(page.locator("#addresses tbody tr")).to_have_count(1)
    shot(page, "addresses")
    page.set_viewport_size({"width": 390, "height": 844})
    page.fill("#addresses-search", "")
    expect(page.locator("#addresses tbody tr")).not_to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "wider than a phone screen"
    shot(page, "addresses-phone")
    page.get_by_role("button", name="Menu").click()
    expect(page.locator("#nav").get_by_role("link", name="Queue")).to_be_visible()
    shot(page, "menu-phone")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_change_mailbox_quota(ui, page):
    cli, base, _ = ui
    goto(page, base, "mailboxes")
    row_action(page, "user-mailboxes", "alice", "Edit")
    page.check("#f-alter-user-mailbox-quota-custom")
    page.fill("#f-alter-user-mailbox-quota-limit", "abc")
    save_dialog(page, "alter-user-mailbox")
    expect(field_error(page, "#dialog-alter-user-mailbox", "quota.limit")).to_be_visible()
    page.fill("#f-alter-user-mailbox-quota-limit", "500")
    save_dialog(page, "alter-user-mailbox")
    expect(page.locator("#dialog-alter-user-mailbox")).to_have_count(0)
    expect(row(page, "user-mailboxes", "alice")).to_contain_text("500 MiB")
    alice = next(m for m in cli.run("list-user-mailboxes")["user_mailboxes"] if m["user"] == "alice")
    assert alice["quota"]["limit"] == 500 and alice["quota"]["custom"] is True


def test_public_mailbox_with_group_acl(ui, page):
    cli, base, _ = ui
    goto(page, base, "mailboxes")
    page.click("#add-public-mailbox")
    page.fill("#f-add-public-mailbox-mailbox", "shared")
    page.select_option("#f-add-public-mailbox-acls-0-stype", label="Group")
    page.fill("#f-add-public-mailbox-acls-0-subject-name", "staff")
    page.select_option("#f-add-public-mailbox-acls-0-rights-rtype", label="Read and write")
    save_dialog(page, "add-public-mailbox")
    expect(page.locator("#dialog-add-public-mailbox")).to_have_count(0)
    expect(row(page, "public-mailboxes", "shared")).to_contain_text("staff")
    shot(page, "mailboxes")
    box = next(b for b in cli.run("list-public-mailboxes") if b["mailbox"] == "shared")
    assert [(a["stype"], a["subject"]["name"], a["rights"]["rtype"]) for a in box["acls"]] == [("group", "staff", "rw")]


def test_relay_rule(ui, page):
    cli, base, _ = ui
    goto(page, base, "relay")
    page.click("#add-relay-rule")
    page.select_option("#f-add-relay-rule-rule_type", label="Recipient")
    page.fill("#f-add-relay-rule-rule_subject", "stopped.example")
    page.fill("#f-add-relay-rule-host", "127.0.0.1")
    page.fill("#f-add-relay-rule-port", str(CLOSED_PORT))
    page.uncheck("#f-add-relay-rule-mandatory_tls")
    save_dialog(page, "add-relay-rule")
    expect(page.locator("#dialog-add-relay-rule")).to_have_count(0)
    expect(row(page, "relay-rules", "stopped.example")).to_contain_text(f"127.0.0.1:{CLOSED_PORT}")
    shot(page, "relay")
    rules = cli.run("list-relay-rules")["rules"]
    assert [(r["rule_type"], r["rule_subject"], r["host"], r["port"], r["tls"]) for r in rules] == [
        ("recipient", "stopped.example", "127.0.0.1", CLOSED_PORT, False)]


def test_bypass_rule_and_spam_thresholds(ui, page):
    cli, base, _ = ui
    goto(page, base, "filter")
    expect(page.locator("#open-rspamd")).to_have_attribute("href", "/rspamd/")
    rspamd = page.request.get(f"{base}/rspamd/")  # with the page's session cookie
    assert rspamd.status == 200 and "rspamd" in rspamd.text().lower()
    page.click("#add-bypass-rule")
    page.select_option("#f-add-bypass-rule-type", label="Email address")
    page.select_option("#f-add-bypass-rule-direction", label="From (sender or client)")
    page.fill("#f-add-bypass-rule-value", "friend@partner.example")
    save_dialog(page, "add-bypass-rule")
    expect(row(page, "bypass-rules", "friend@partner.example")).to_be_visible()
    assert cli.run("list-bypass-rules")["bypass_rules"] == [
        {"type": "email", "direction": "from", "value": "friend@partner.example"}]

    # Wrong threshold: the action's error next to the field, nothing saved.
    def antispam_settings():
        """The saved antispam settings, without the DNS probe's result (it changes every 30 s)."""
        antispam = cli.run("get-filter-configuration")["antispam"]
        antispam.pop("dns", None)
        return antispam

    before = antispam_settings()
    card = "#card-set-filter-configuration"
    page.fill("#f-set-filter-configuration-antispam-spam_flag_threshold", "0")
    page.locator(card).get_by_role("button", name="Save").click()
    error = field_error(page, card, "antispam.spam_flag_threshold")
    expect(error).to_be_visible()
    bad = {"antispam": {**{k: before[k] for k in ("enabled", "deny_message_threshold", "greylist", "rbl")},
                        "spam_flag_threshold": 0}}
    codes = expected_errors(cli, "set-filter-configuration", bad, "antispam.spam_flag_threshold")
    assert codes and shown_errors(error) == codes
    shot(page, "filter-error")
    assert antispam_settings() == before

    page.fill("#f-set-filter-configuration-antispam-spam_flag_threshold", "7.5")
    page.fill("#f-set-filter-configuration-antispam-deny_message_threshold", "20")
    page.locator(card).get_by_role("button", name="Save").click()
    expect(error).to_be_hidden()
    def saved():
        antispam = cli.run("get-filter-configuration")["antispam"]
        return antispam if antispam["spam_flag_threshold"] == 7.5 else None

    antispam = wait_for(saved, "thresholds saved")
    assert antispam["deny_message_threshold"] == 20
    goto(page, base, "filter")
    shot(page, "filter")


def test_queue_see_trace_delete(ui, page):
    cli, base, _ = ui
    # sales@ has an external destination behind the relay rule to a closed port: that copy queues.
    sent = []
    with smtplib.SMTP(HOST, cli.port(25), timeout=30) as s:
        s.ehlo("client.example.net")
        for _ in range(2):
            msg = message("someone@example.net", f"sales@{DOMAIN}", f"queued {token()}")
            s.send_message(msg)
            sent.append(msg["Message-ID"].strip("<>"))

    def queued():
        entries = cli.run("report-queue-status")["queue_status"]
        return [e for e in entries if any(r["address"] == "far@stopped.example" for r in e["recipients"])]

    entries = wait_for(lambda: len(queued()) == 2 and queued(), "both messages in the queue", timeout=90)
    entry = next(e for e in entries if e.get("message_id", "").strip("<>") == sent[0])
    message_id = sent[0]
    goto(page, base, "queue")
    r = row(page, "queue", entry["queue_id"])
    expect(r).to_contain_text("far@stopped.example")
    expect(page.locator("#queue tbody tr")).to_have_count(2)
    shot(page, "queue")

    row_action(page, "queue", entry["queue_id"], "See details")
    expect(page.locator("#dialog-queue-details")).to_contain_text(message_id)
    page.locator("#dialog-queue-details").get_by_role("button", name="Close").click()

    row_action(page, "queue", entry["queue_id"], "Trace")
    lines = page.locator("#trace-lines tbody tr")
    expect(lines.first).to_be_visible()
    trace = cli.run("trace-message", {"message_id": message_id})
    assert trace["lines"], "trace-message found no log line"
    expect(page.locator("#dialog-trace")).to_contain_text(entry["queue_id"])
    shot(page, "queue-trace")
    page.locator("#dialog-trace").get_by_role("button", name="Close").click()

    # One message: its own Delete; the other: Delete all (a task with progress).
    row_action(page, "queue", entry["queue_id"], "Delete")
    confirm(page, "Delete")
    expect(page.locator("#queue tbody tr")).to_have_count(1)  # redrawn without it
    expect(row(page, "queue", entry["queue_id"])).to_have_count(0)
    assert [e["queue_id"] for e in queued()] == [e["queue_id"] for e in entries if e is not entry]
    page.click("#queue-delete-all")
    confirm(page, "Delete all")
    expect(page.locator("#queue tbody td.empty")).to_be_visible()
    assert queued() == []


def test_every_page_has_its_manifest_title(ui, page):
    """Each route of ui-manifest.json opens, shows its title and no error; a screenshot each."""
    cli, base, _ = ui
    routes = page.evaluate("fetch('/api/manifest').then(r => r.json())")["routes"]
    for route in routes:
        if route["path"] == "wizard":
            continue
        goto(page, base, route["path"])
        expect(page.locator("#main h1")).to_have_text(route["title"])
        expect(page.locator("#main .page > p.error")).to_have_count(0)
        assert unlabelled(page) == [], f"unlabelled fields on {route['path']}"
        shot(page, f"page-{route['path']}")
        page.set_viewport_size({"width": 390, "height": 844})  # a phone: no sideways scrolling
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, f"{route['path']} wider than a phone"
        shot(page, f"phone-{route['path']}")
        page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#login-form")).to_be_visible()
