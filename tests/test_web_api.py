"""`mailctl serve`: the HTTPS API over a real running instance, with a real HTTP client.

Sessions, CSRF, the login throttle, the action shapes (200/422/404/500), tasks, the
OpenAPI document, status and manifest, and Rspamd's web UI behind the login.
"""

from __future__ import annotations

import json
import re
import socket
import stat
import subprocess
import time

import httpx
import pytest
from conftest import ROOT
from ldap3 import Connection, Server
from protocol import HOST, daemon_address
from webserver import EXTRA_PORT_BASE, start_server

pytestmark = pytest.mark.containers


@pytest.fixture(scope="module")
def web(mail, tmp_path_factory):
    server = start_server(mail, tmp_path_factory.mktemp("web"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(web):
    client = web.login()
    yield client
    client.close()


def path_example(path: str) -> str:
    """A concrete URL for an OpenAPI path template."""
    return path.replace("{name}", "list-domains").replace("{id}", "00000000-0000-0000-0000-000000000000")


# --- the page and the session ------------------------------------------------------------------

def test_the_page_and_its_assets_answer_without_a_session(web):
    with web.client() as anonymous:
        page = anonymous.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert anonymous.get("/queue").text == page.text  # every UI route is the single page app
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
        assert assets, "index.html loads its scripts and styles from /static/"
        for asset in assets:
            assert anonymous.get(asset).status_code == 200, asset
        assert "default-src 'self'" in page.headers["content-security-policy"]


def test_every_api_route_without_a_session_is_401(web, admin):
    document = admin.get("/api/openapi.json").json()
    operations = [(method, path) for path, item in document["paths"].items() for method in item]
    assert len(operations) > 60  # one per action, plus the session, task and UI routes
    with web.client() as anonymous:
        for method, path in operations:
            if path == "/api/login":
                continue
            r = anonymous.request(method.upper(), path_example(path), json={})
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.json() == {"error": "not logged in"}
        # and what the document does not list: unknown routes and the Rspamd proxy
        for method, url in (("GET", "/api/nothing-here"), ("GET", "/rspamd/"), ("GET", "/rspamd/stat"),
                            ("POST", "/rspamd/learnspam")):
            assert anonymous.request(method, url).status_code == 401, url


def test_login_session_and_logout(web):
    with web.client() as client:
        assert client.post("/api/login", json={"username": "admin", "password": "wrong"}).status_code == 401
        assert client.post("/api/login", json={"username": "nobody", "password": "x"}).status_code == 401
        assert client.post("/api/login", json={"username": "admin"}).status_code == 422
        r = client.post("/api/login", json={"username": "admin", "password": web.admin_password()})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"]
        assert re.search(r"(?i)\bhttponly\b", cookie) and re.search(r"(?i)\bsecure\b", cookie)
        assert re.search(r"(?i)samesite=strict", cookie)
        token = r.json()["csrf_token"]
        assert client.get("/api/session").json() == {"username": "admin", "csrf_token": token}
        assert client.post("/api/logout").status_code == 403  # logout changes state: CSRF too
        assert client.post("/api/logout", headers={"X-CSRF-Token": token}).status_code == 200
        assert client.get("/api/session").status_code == 401
        # the old cookie is dead on the server, not only dropped by the client
        assert httpx.get(f"{web.url}/api/session", verify=web.tls(),
                         headers={"Cookie": cookie.split(";")[0]}).status_code == 401


def test_admin_password_is_a_0600_secret_and_reset_replaces_it(web, mail):
    secrets = mail.state_dir / mail.instance / "secrets"
    for name in ("web-admin-password", "web-admin-password.hash"):
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o600
    old = web.admin_password()
    assert old not in (secrets / "web-admin-password.hash").read_text()  # the server checks a hash
    new = mail("admin-password", "--reset").stdout.strip()
    assert new and new != old and web.admin_password() == new
    with web.client() as client:
        assert client.post("/api/login", json={"username": "admin", "password": old}).status_code == 401
        assert client.post("/api/login", json={"username": "admin", "password": new}).status_code == 200


def test_state_changing_requests_without_the_csrf_token_are_refused(admin, mail):
    token = admin.headers.pop("X-CSRF-Token")
    try:
        for headers in ({}, {"X-CSRF-Token": "forged"}):
            r = admin.post("/api/actions/add-domain", json={"domain": "csrf.example.com"}, headers=headers)
            assert r.status_code == 403, r.text
            assert admin.post("/api/tasks/list-domains", headers=headers).status_code == 403
        assert "csrf.example.com" not in {d["domain"] for d in mail.run("list-domains")}
        assert admin.get("/api/session").status_code == 200  # reading needs no token
    finally:
        admin.headers["X-CSRF-Token"] = token


def test_a_login_flood_from_one_address_is_slowed_then_refused(mail, tmp_path):
    # Its own server: the lock-out must not hit the other tests' logins from 127.0.0.1.
    server = start_server(mail, tmp_path, port=EXTRA_PORT_BASE)
    try:
        with server.client() as client:
            times = []
            for _ in range(5):
                started = time.monotonic()
                r = client.post("/api/login", json={"username": "admin", "password": "guess"})
                times.append(time.monotonic() - started)
                assert r.status_code == 401
            assert times[3] > times[0] + 1  # each failure answered more slowly than the last
            r = client.post("/api/login", json={"username": "admin", "password": server.admin_password()})
            assert r.status_code == 429, "even the right password is refused while locked out"
            assert int(r.headers["retry-after"]) > 60
    finally:
        server.stop()


# --- actions -----------------------------------------------------------------------------------

def test_actions_lists_every_action_with_self_contained_schemas(admin):
    actions = admin.get("/api/actions").json()
    names = subprocess.run(["ls", str(ROOT / "actions")], capture_output=True, text=True).stdout.split()
    assert sorted(a["name"] for a in actions) == sorted(n for n in names if not n.endswith(".json"))
    add_domain = next(a for a in actions if a["name"] == "add-domain")
    assert add_domain["description"]
    assert "$ref" not in json.dumps(actions)
    assert add_domain["input_schema"]["properties"]["domain"]["type"] == "string"


def test_action_200_is_the_cli_output(admin, mail):
    r = admin.post("/api/actions/add-domain", json={"domain": "web.example.com", "description": "over https"})
    assert r.status_code == 200 and r.json() == {}
    try:
        over_http = admin.post("/api/actions/list-domains").json()
        assert over_http == mail.run("list-domains")
        assert "web.example.com" in {d["domain"] for d in over_http}
        # read-only actions also take "" and {} (what NS8 clients send)
        assert admin.post("/api/actions/list-domains", json="").json() == over_http
    finally:
        assert admin.post("/api/actions/remove-domain", json={"domain": "web.example.com"}).status_code == 200


def test_action_422_is_the_exit_10_error_list(admin, mail):
    data = {"domain": "not a domain"}
    r = admin.post("/api/actions/add-domain", json=data)
    assert r.status_code == 422
    cli = mail.run("add-domain", data, expect=10)
    assert r.json() == json.loads(cli.stdout)
    assert {e["field"] for e in r.json()} == {"domain"}
    bad_json = admin.post("/api/actions/add-domain", content=b"{nope", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 422 and bad_json.json()[0]["error"] == "invalid_json"


def test_action_404_for_an_unknown_action(admin):
    r = admin.post("/api/actions/no-such-action", json={})
    assert r.status_code == 404 and "no-such-action" in r.json()["error"]


def test_action_500_has_a_one_line_reason_and_changes_nothing(admin, mail):
    # A frozen slapd (paused, so its address and link stay as they are) times the action out.
    subprocess.run(["podman", "pause", f"{mail.instance}-openldap"], check=True, capture_output=True)
    try:
        r = admin.post("/api/actions/add-group", json={"group": "webfail"})
    finally:
        subprocess.run(["podman", "unpause", f"{mail.instance}-openldap"], check=True, capture_output=True)
    assert r.status_code == 500
    reason = r.json()["error"]
    assert reason and "\n" not in reason and "ldap" in reason
    assert "webfail" not in {g["group"] for g in mail.run("list-groups")["groups"]}


# --- tasks -------------------------------------------------------------------------------------

def wait_task(client: httpx.Client, task_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = client.get(f"/api/tasks/{task_id}").json()
        if record["status"] != "running":
            return record
        assert 0 <= record["progress"] <= 100
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} still running after {timeout}s")


def test_a_task_runs_the_action_and_reports_like_the_agent(admin, mail):
    r = admin.post("/api/tasks/add-domain", json={"domain": "task.example.com"})
    assert r.status_code == 202
    task_id = r.json()["id"]
    record = wait_task(admin, task_id)
    assert record == {"id": task_id, "action": "add-domain", "status": "done", "progress": 100,
                      "output": {}, "error": "", "exit_code": 0}
    listing = wait_task(admin, admin.post("/api/tasks/list-domains").json()["id"])
    assert listing["output"] == mail.run("list-domains")
    assert "task.example.com" in {d["domain"] for d in listing["output"]}
    # a failure in the action: the record says so, with the exit code and the reason
    duplicate = wait_task(admin, admin.post("/api/tasks/add-domain", json={"domain": "task.example.com"}).json()["id"])
    assert duplicate["status"] == "failed" and duplicate["exit_code"] == 10
    assert duplicate["output"][0]["field"] == "domain"
    mail.run("remove-domain", {"domain": "task.example.com"})


def test_task_input_is_checked_before_it_starts(admin):
    r = admin.post("/api/tasks/add-domain", json={"domain": 42})
    assert r.status_code == 422 and r.json()[0]["field"] == "domain"
    assert admin.post("/api/tasks/no-such-action").status_code == 404
    assert admin.get("/api/tasks/not-a-task").status_code == 404


# --- the rest ----------------------------------------------------------------------------------

def test_status_is_mailctl_status(admin, mail):
    over_http = admin.get("/api/status").json()
    assert over_http == json.loads(mail("status", "--json").stdout)
    assert {row["health"] for row in over_http} == {"healthy"}


def test_manifest_is_the_ui_manifest(admin):
    assert admin.get("/api/manifest").json() == json.loads((ROOT / "ui-manifest.json").read_text())


def test_openapi_document_has_one_operation_per_action(admin):
    document = admin.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    operation = document["paths"]["/api/actions/add-domain"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["domain"] and "$ref" not in json.dumps(document)
    assert {"200", "401", "403", "422", "500"} <= set(operation["responses"])


def test_rspamd_web_ui_is_behind_the_login(web, admin, mail):
    page = admin.get("/rspamd/")
    assert page.status_code == 200 and "Rspamd" in page.text
    # the proxy adds Rspamd's password: the controller says this client is authenticated
    assert admin.get("/rspamd/auth").json()["auth"] == "ok"
    # Rspamd's own pages post without our CSRF header: only same-origin posts go through
    message = b"From: a@example.net\r\nTo: b@example.org\r\nSubject: proxy\r\n\r\nhello\r\n"
    assert admin.post("/rspamd/checkv2", content=message).status_code == 403
    scanned = admin.post("/rspamd/checkv2", content=message, headers={"Origin": web.url.replace("127.0.0.1", HOST)})
    assert scanned.status_code == 200 and "action" in scanned.json()
    # and the controller port itself is not on the host
    with pytest.raises(OSError):
        socket.create_connection((HOST, mail.port(11334)), timeout=5).close()


# --- domain admins -----------------------------------------------------------------------------

@pytest.fixture
def domain_admins(mail):
    """User `webadm` in the embedded domain's group `domain admins` (made with an LDAP client:
    the add-group action only takes names without spaces), and `webuser` outside it."""
    mail.run("add-user", {"user": "webadm", "password": "Adm1n-Passw0rd"})
    mail.run("add-user", {"user": "webuser", "password": "Us3r-Passw0rd"})
    ip = daemon_address(mail.instance, "openldap")
    password = (mail.state_dir / mail.instance / "secrets" / "ldap-admin-password").read_text()
    conn = Connection(Server(f"ldap://{ip}:389"), "cn=admin,dc=mail,dc=local", password, auto_bind=True)
    dn = "cn=domain admins,ou=Groups,dc=mail,dc=local"
    assert conn.add(dn, ["posixGroup"], {"cn": "domain admins", "gidNumber": 19999, "memberUid": ["webadm"]})
    yield
    conn.delete(dn)
    conn.unbind()
    mail.run("remove-user", {"user": "webadm"})
    mail.run("remove-user", {"user": "webuser"})


def test_domain_admins_log_in_with_their_own_password(web, domain_admins):
    with web.client() as client:
        assert client.post("/api/login", json={"username": "webadm", "password": "wrong"}).status_code == 401
        assert client.post("/api/login", json={"username": "webuser", "password": "Us3r-Passw0rd"}).status_code == 401
        r = client.post("/api/login", json={"username": "webadm", "password": "Adm1n-Passw0rd"})
        assert r.status_code == 200
        assert client.get("/api/session").json()["username"] == "webadm"
        r = client.post("/api/actions/list-users", headers={"X-CSRF-Token": r.json()["csrf_token"]})
        assert r.status_code == 200 and "webadm" in {u["user"] for u in r.json()["users"]}
