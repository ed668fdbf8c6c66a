"""The UI's form builder (static/js/schemaform.js) on the input schema of every action, in chromium.

No instance is needed: the static files are served by a plain HTTP server and each action's
schema (with its $refs resolved, as GET /api/actions gives it) becomes a form in the page.
Every form must build, label every field, and put each error the action gives for an empty
input next to the field it names. A schema change that the forms cannot render fails here.
"""

from __future__ import annotations

import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from mailctl import schemas

STATIC = Path(__file__).resolve().parents[1] / "module/mailctl/web/static"
PORT = int(os.environ.get("MAIL_TEST_UI_STATIC_PORT", "23290"))
CHROMIUM = os.environ.get("MAIL_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

BUILD_FORMS = """async ([schemas, errors]) => {
  const { SchemaForm, flatten } = await import('/js/schemaform.js');
  const out = {};
  for (const [name, schema] of Object.entries(schemas)) {
    const form = new SchemaForm(schema, { id: `t-${name}` });
    document.body.append(form.element);
    const fields = [...form.element.querySelectorAll('input, select, textarea')];
    form.showErrors(errors[name]);
    out[name] = {
      properties: Object.keys(flatten(schema).properties || {}),
      fields: fields.length,
      unlabelled: fields.filter((el) => !el.labels?.length).map((el) => el.id),
      placed: [...form.element.querySelectorAll('.error[data-error]')].flatMap((e) => e.dataset.error.split(' ')),
      values: form.values(),
    };
    form.element.remove();
  }
  return out;
}"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def forms():
    """Every action's form, built in chromium, with its empty-input errors shown."""
    handler = functools.partial(_Quiet, directory=str(STATIC))
    server = ThreadingHTTPServer(("127.0.0.1", PORT), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    names = schemas.action_names()
    inputs = {n: schemas.resolved_schema(n, "input") for n in names}
    errors = {n: schemas.validation_errors(n, "input", {}) for n in names}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{PORT}/index-of-nothing")  # any page of this origin
            built = page.evaluate(BUILD_FORMS, [inputs, errors])
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return built, errors


def test_every_action_has_a_form_with_labelled_fields(forms):
    built, _ = forms
    assert set(built) == set(schemas.action_names())
    assert {n: b["unlabelled"] for n, b in built.items() if b["unlabelled"]} == {}
    # Actions with input get fields (those without input get an empty form).
    for name in ("add-domain", "add-address", "alter-user-mailbox", "add-public-mailbox", "add-relay-rule",
                 "add-bypass-rule", "set-filter-configuration", "set-mailbox-settings", "configure-module"):
        assert built[name]["fields"] >= 1, name


def test_errors_of_an_empty_input_land_next_to_their_fields(forms):
    built, errors = forms
    misplaced = {}
    for name, form in built.items():
        for error in errors[name]:
            top = error["field"].split(".")[0]
            if top in form["properties"] and error["error"] not in form["placed"]:
                misplaced.setdefault(name, []).append(error["field"])
    assert misplaced == {}


def test_an_empty_form_sends_only_what_the_user_set(forms):
    """Nothing typed: no text field is sent, only the unchecked boxes (false) and empty lists."""
    built, _ = forms
    for name in ("add-domain", "add-address", "add-relay-rule", "add-bypass-rule"):
        values = built[name]["values"]
        leaves = [v for v in _leaves(values)]
        assert all(v is False or v == [] or v is None for v in leaves), (name, values)


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list) and value:
        for v in value:
            yield from _leaves(v)
    else:
        yield value
