"""The admin server's pure parts: password hashes, sessions, the login throttle, schemas
with references inlined, the OpenAPI document, and the session/CSRF guard (in process)."""

from __future__ import annotations

import json
import time

import pytest
from starlette.testclient import TestClient

from mailctl import schemas
from mailctl.secrets import ADMIN_PASSWORD, ensure_secrets, read_secret, scrypt_hash, scrypt_verify
from mailctl.settings import Instance
from mailctl.web import openapi
from mailctl.web.app import create_app
from mailctl.web.auth import LoginThrottle, Sessions


def test_scrypt_hash_verifies_only_its_password():
    stored = scrypt_hash("s3cret")
    assert stored.startswith("scrypt$") and "s3cret" not in stored
    assert scrypt_verify("s3cret", stored)
    assert not scrypt_verify("s3cret ", stored) and not scrypt_verify("", stored)
    assert scrypt_hash("s3cret") != stored  # salted
    assert not scrypt_verify("s3cret", "garbage") and not scrypt_verify("s3cret", "")


def test_sessions_expire_when_idle_and_can_be_dropped():
    sessions = Sessions(idle=0.2, lifetime=10)
    sid, session = sessions.create("admin")
    assert sessions.get(sid) is session and sessions.get("other") is None and sessions.get(None) is None
    time.sleep(0.3)
    assert sessions.get(sid) is None
    sid, _ = sessions.create("admin")
    sessions.drop(sid)
    assert sessions.get(sid) is None


def test_throttle_slows_then_locks_out_one_address_only():
    throttle = LoginThrottle(max_failures=3, window=60, lockout=30, base_delay=0.1)
    assert [throttle.failed("10.0.0.1") for _ in range(2)] == [0.1, 0.2]
    assert throttle.retry_after("10.0.0.1") == 0
    throttle.failed("10.0.0.1")
    assert 29 <= throttle.retry_after("10.0.0.1") <= 31
    assert throttle.retry_after("10.0.0.2") == 0
    throttle.failed("10.0.0.2")
    throttle.succeeded("10.0.0.2")  # a success clears the count
    assert [throttle.failed("10.0.0.2") for _ in range(2)] == [0.1, 0.2]


def test_resolved_schemas_have_no_references_and_validate_the_same():
    for name in schemas.action_names():
        for kind in ("input", "output"):
            assert "$ref" not in json.dumps(schemas.resolved_schema(name, kind)), (name, kind)
    from jsonschema import Draft7Validator
    inlined = Draft7Validator(schemas.resolved_schema("add-domain", "input"), format_checker=schemas.format_checker())
    original = schemas.load_validator("add-domain", "input")
    samples = ({"domain": "example.com"}, {"domain": "no domain"}, {}, {"domain": "x.org", "other": 1})
    assert [inlined.is_valid(d) for d in samples] == [original.is_valid(d) for d in samples] == [True] + [False] * 3


def test_openapi_has_every_action_in_json_schema_2020_12_terms():
    document = openapi.document("mailctl-x")
    for name in schemas.action_names():
        assert f"/api/actions/{name}" in document["paths"]
    body = document["paths"]["/api/actions/set-user-domain"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["dependentRequired"] == {"bind_password": ["bind_dn"]}
    assert "dependencies" not in json.dumps(document)


@pytest.fixture
def client(tmp_path):
    instance = Instance("w1", state_root=tmp_path)
    ensure_secrets(instance)
    with TestClient(create_app(instance), base_url="https://testserver") as c:
        c.password = read_secret(instance, ADMIN_PASSWORD)
        yield c


def test_guard_needs_a_session_then_the_csrf_token(client):
    assert client.get("/api/actions").status_code == 401
    assert client.post("/api/actions/add-domain", json={}).status_code == 401
    assert client.get("/rspamd/").status_code == 401
    assert client.post("/api/login", json={"username": "admin", "password": "nope"}).status_code == 401
    r = client.post("/api/login", json={"username": "admin", "password": client.password})
    assert r.status_code == 200
    token = r.json()["csrf_token"]
    assert client.get("/api/actions").status_code == 200
    assert client.post("/api/actions/add-domain", json={"domain": "bad domain"}).status_code == 403
    r = client.post("/api/actions/add-domain", json={"domain": "bad domain"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 422 and r.json()[0]["field"] == "domain"
    assert client.post("/api/actions/nope", headers={"X-CSRF-Token": token}).status_code == 404
    assert client.get("/api/no-such-route").status_code == 404
