"""Schemathesis against /api/openapi.json on this module's own instance: inputs generated
from every action's schema, a bounded number per operation (MAIL_TEST_SCHEMATHESIS_EXAMPLES),
must never get a 500 nor a response that breaks the document (status, content type, schema).

Left out: login/logout (they would end the run's own session or lock its address out),
starting tasks (any action, including destroy-module), and the actions that replace or
remove the instance itself (destroy, import, restore, clone), and those that read a backup
repository (any restic repository URL: generated ones would reach out), which have their own tests.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import requests
import schemathesis
import urllib3  # noqa: F401 - named by the filterwarnings mark
from conftest import TEST_INSTANCE, TEST_PREFIX
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from webserver import start_server

from mailctl.web import openapi

pytestmark = [pytest.mark.containers,
              pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")]

NAME = "sc1"
OFFSET = int(os.environ.get("MAIL_TEST_SCHEMATHESIS_OFFSET", "22300"))
EXAMPLES = int(os.environ.get("MAIL_TEST_SCHEMATHESIS_EXAMPLES", "3"))
LIFE_CYCLE = ("destroy-module", "import-module", "restore-module", "clone-module",
              "seek-snapshot-contents", "restore-backup-content")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# The very document the server serves (test_served_document_is_the_generated_one checks it).
schema = (schemathesis.openapi.from_dict(openapi.document(f"mailctl-{TEST_PREFIX}{NAME}"))
          .exclude(path_regex=r"^/api/(login|logout|tasks/\{name\})$")
          .exclude(path=[f"/api/actions/{name}" for name in LIFE_CYCLE]))
# Inputs the schemas accept (refusals are test_web_api's and test_invalid_input's), sent with
# the run's own session: no generated session cookie, no coverage phase (boundary and
# missing-auth variants by the thousand).
schema.config.generation.modes = [GenerationMode.POSITIVE]
schema.config.generation.with_security_parameters = False
schema.config.phases.coverage.enabled = False


@pytest.fixture(scope="module")
def server(fresh_instance, tmp_path_factory):
    cli = fresh_instance(NAME, OFFSET)
    web = start_server(cli, tmp_path_factory.mktemp("schemathesis"))
    yield web
    web.stop()
    cli("down", "--purge")  # give the memory back now, not at the end of the session


@pytest.fixture(scope="module")
def session(server) -> requests.Session:
    """A logged-in requests session (schemathesis's transport) with the CSRF header."""
    client = server.login()
    http = requests.Session()
    http.trust_env = False  # no REQUESTS_CA_BUNDLE from the environment: it would override verify
    http.verify = False  # the certificate names the mail host, not 127.0.0.1 (test_web_api checks it)
    http.headers["X-CSRF-Token"] = client.headers["X-CSRF-Token"]
    for name, value in client.cookies.items():
        http.cookies.set(name, value)
    client.close()
    yield http
    http.close()


def test_served_document_is_the_generated_one(server, session):
    served = session.get(f"{server.url}/api/openapi.json").json()
    assert served == openapi.document(f"mailctl-{TEST_PREFIX}{NAME}")
    assert TEST_INSTANCE  # the shared instance is not touched here: this module has its own


STATUSES: Counter[tuple[str, int]] = Counter()  # (operation, status) of every generated call


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case, server, session):
    response = case.call(base_url=server.url, session=session, timeout=120, verify=False)
    STATUSES[(case.operation.label, response.status_code)] += 1
    case.validate_response(response, checks=CHECKS)


def test_the_run_reached_the_actions_themselves():
    """Not only refusals: generated inputs that the actions accepted and ran (200)."""
    operations = {op for op, _ in STATUSES}
    accepted = {op for (op, status) in STATUSES if status == 200}
    print(f"schemathesis: {sum(STATUSES.values())} calls, {len(accepted)} of {len(operations)} operations "
          f"answered 200 at least once; statuses {sorted(Counter(s for _, s in STATUSES.elements()).items())}")
    assert len(operations) == len(list(schema.get_all_operations()))
    assert len(accepted) >= len(operations) // 2
