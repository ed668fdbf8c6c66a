"""`mailctl kube`'s manifests: valid Kubernetes 1.37 objects (the OpenAPI schemas bundled by
kubernetes-validate, strict: no unknown fields), consistent with the stack `up` runs.

The instance is prepared the way `up` prepares it (state, secrets, certificate, rendered
configuration) in a temporary directory; no engine is needed.
"""

from __future__ import annotations

import base64
import re
import sqlite3
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from mailctl import kube
from mailctl.lifecycle import prepare
from mailctl.settings import Instance
from mailctl.stack import DAEMONS, PORTS, SECRETS, build_stack

K8S_VERSION = "1.37.0"
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")


def objects_of(instance: Instance, **kw) -> list[dict]:
    store, hostname, _ = prepare(instance)
    store.close()
    return kube.manifests(build_stack(instance, hostname), **kw)


@pytest.fixture(scope="module")
def instance(tmp_path_factory) -> Instance:
    return Instance(name="k1", state_root=tmp_path_factory.mktemp("kube-state"))


@pytest.fixture(scope="module")
def objects(instance) -> list[dict]:
    return objects_of(instance)


def by_kind(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_every_object_validates_against_the_kubernetes_schema(objects):
    # Through YAML, as `kubectl apply -f` would read the output.
    for obj in yaml.safe_load_all(kube.to_yaml(objects)):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_an_invalid_object_is_caught_by_the_same_check(objects):
    broken = yaml.safe_load(yaml.safe_dump(by_kind(objects, "Deployment")["k1-postfix"]))
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "twenty-five"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_one_deployment_per_daemon_with_the_stack_image_and_health_probes(instance, objects):
    deployments = by_kind(objects, "Deployment")
    assert sorted(deployments) == sorted(f"k1-{d}" for d in DAEMONS)
    stack = build_stack(instance, "mail.example.org")
    for daemon in DAEMONS:
        pod = deployments[f"k1-{daemon}"]["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        assert container["image"] == stack.container(daemon).image
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["exec"]["command"] == list(stack.container(daemon).health_command)
        # The selector picks this pod template, and the ClusterIP Service of the same name.
        selector = deployments[f"k1-{daemon}"]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod["metadata"]["labels"].items()
        assert by_kind(objects, "Service")[daemon]["spec"]["selector"] == selector


def test_names_follow_kubernetes_rules(objects):
    for obj in objects:
        assert DNS_LABEL.match(obj["metadata"]["name"]), obj["metadata"]["name"]
    for deployment in by_kind(objects, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        assert all(DNS_LABEL.match(v["name"]) for v in pod["volumes"])
        names = [v["name"] for v in pod["volumes"]]
        assert len(names) == len(set(names))
        for port in pod["containers"][0]["ports"]:
            assert PORT_NAME.match(port["name"]), port["name"]


def test_public_services_carry_the_mail_ports_and_internal_ones_are_cluster_only(objects):
    services = by_kind(objects, "Service")
    public = {p["port"] for name in ("k1-smtp", "k1-imap") for p in services[name]["spec"]["ports"]}
    assert public == {port for daemon, port, _ in PORTS.values() if daemon in ("postfix", "dovecot")}
    assert services["k1-smtp"]["spec"]["type"] == "LoadBalancer"
    assert all(services[d]["spec"]["type"] == "ClusterIP" for d in DAEMONS)
    assert {p["port"] for p in services["dovecot"]["spec"]["ports"]} >= {24, 12345}
    assert {p["port"] for p in services["rspamd"]["spec"]["ports"]} >= {11332}


def test_claims_for_mail_queue_redis_and_ldap(objects):
    assert sorted(by_kind(objects, "PersistentVolumeClaim")) == ["k1-ldap", "k1-queue", "k1-redis", "k1-vmail"]


def test_secrets_hold_the_secret_files_and_configmaps_none(instance, objects):
    secrets = by_kind(objects, "Secret")
    postfix = secrets["k1-postfix-secrets"]["data"]
    assert set(postfix) == set(SECRETS["postfix"]) | {kube.ENCODING_PROBE}
    key = base64.b64decode(secrets["k1-tls"]["data"]["key.pem"]).decode()
    assert key == (instance.tls_dir / "key.pem").read_text()
    master = (instance.secrets_dir / "dovecot-master-users").read_text()
    assert master.strip()
    configmaps = kube.to_yaml(list(by_kind(objects, "ConfigMap").values()))
    assert master.strip() not in configmaps and "PRIVATE KEY" not in configmaps


def test_configmaps_hold_each_rendered_file(instance, objects):
    config = by_kind(objects, "ConfigMap")["k1-rspamd-config"]["data"]
    rendered = instance.config_dir / "current" / "rspamd"
    for path in rendered.rglob("*"):
        if path.is_file():
            assert config[path.relative_to(rendered).as_posix().replace("/", "__")] == path.read_text()
    state = base64.b64decode(by_kind(objects, "ConfigMap")["k1-state"]["binaryData"]["state.sqlite"])
    assert state.startswith(b"SQLite format 3")


def _hashes(objects) -> dict[str, str]:
    return {name: d["spec"]["template"]["metadata"]["annotations"]["mail/inputs-hash"]
            for name, d in by_kind(objects, "Deployment").items()}


def test_a_state_change_rolls_only_the_daemons_that_read_the_state(instance, objects):
    before = _hashes(objects)
    with sqlite3.connect(instance.db_path) as db:  # a change only postfix and dovecot see (their lookups)
        db.execute("INSERT INTO settings(key, value) VALUES('kube-test', '1')")
    after = _hashes(objects_of(instance))
    changed = sorted(name for name in before if before[name] != after[name])
    assert changed == ["k1-dovecot", "k1-postfix"]


def test_podman_variant_pins_addresses_and_reuses_existing_volumes(instance):
    addresses = {d: f"10.99.0.{200 + i}" for i, d in enumerate(DAEMONS)}
    objects = objects_of(instance, addresses=addresses, existing_volumes=frozenset({"k1-vmail"}))
    assert "k1-vmail" not in by_kind(objects, "PersistentVolumeClaim")
    dovecot = by_kind(objects, "Deployment")["k1-dovecot"]["spec"]["template"]["spec"]
    assert {"ip": "10.99.0.204", "hostnames": ["dovecot"]} in dovecot["hostAliases"]
    imaps = next(p for p in dovecot["containers"][0]["ports"] if p["containerPort"] == 993)
    assert imaps["hostPort"] == 993
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_podman_containers_conf_keeps_the_host_settings(tmp_path):
    conf = kube.podman_containers_conf(tmp_path / "containers.conf", (("nofile", 100, 200),))
    import tomllib

    parsed = tomllib.loads(conf.read_text())
    assert parsed["containers"]["default_ulimits"] == ["nofile=100:200"]
    if Path("/etc/containers/containers.conf").exists():
        system = tomllib.loads(Path("/etc/containers/containers.conf").read_text())
        assert parsed.get("engine") == system.get("engine")


def test_a_state_too_big_for_a_configmap_is_refused(instance, monkeypatch):
    from mailctl.errors import MailError

    monkeypatch.setattr(kube, "MAX_OBJECT_BYTES", 1000)
    with pytest.raises(MailError, match="more than Kubernetes stores"):
        objects_of(instance)


def test_configmap_and_secret_keys_are_valid_kubernetes_keys(objects):
    key = re.compile(r"^[-._a-zA-Z0-9]+$")
    for obj in objects:
        if obj["kind"] in ("ConfigMap", "Secret"):
            for name in {**obj.get("data", {}), **obj.get("binaryData", {})}:
                assert key.match(name) and len(name) <= 253, (obj["metadata"]["name"], name)


def test_output_redirected_to_a_file_is_made_private(tmp_path):
    import os

    path = tmp_path / "mail.yaml"
    with open(path, "w") as f:
        os.chmod(path, 0o644)
        assert kube.make_private(f.fileno())
    assert path.stat().st_mode & 0o777 == 0o600
    read, write = os.pipe()
    try:
        assert not kube.make_private(write)
    finally:
        os.close(read)
        os.close(write)


def test_network_policies_express_the_links(objects):
    """One NetworkPolicy per daemon: its pods take connections from its LINKS clients on their
    ports and from anyone on the public ports only; redis and openldap connect nowhere."""
    from mailctl.stack import INTERNAL_PORTS, LINKS

    policies = {o["metadata"]["labels"]["app.kubernetes.io/component"]: o["spec"]
                for o in objects if o["kind"] == "NetworkPolicy"}
    assert set(policies) == set(DAEMONS)
    for daemon, spec in policies.items():
        assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == daemon
        allowed = {}
        for rule in spec["ingress"]:
            sources = tuple(peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                            for peer in rule.get("from", [])) or ("anyone",)
            for source in sources:
                allowed.setdefault(source, set()).update(p["port"] for p in rule["ports"])
        expected = {client: {INTERNAL_PORTS[daemon][n] for n in names}
                    for client, names in LINKS.get(daemon, {}).items()}
        if daemon == "postfix":
            expected["anyone"] = {25, 587, 465}
        if daemon == "dovecot":
            expected["anyone"] = {143, 993, 110, 995, 4190}
        assert allowed == expected, daemon
        assert ("Egress" in spec["policyTypes"]) == (daemon in ("redis", "openldap")), daemon
    assert policies["redis"]["egress"] == [] and policies["clamav"]["ingress"][0]["from"][0]["podSelector"][
        "matchLabels"]["app.kubernetes.io/component"] == "rspamd"


def test_the_podman_variant_has_no_network_policies(instance):
    addresses = {d: f"10.99.0.{200 + i}" for i, d in enumerate(DAEMONS)}
    assert not [o for o in objects_of(instance, addresses=addresses) if o["kind"] == "NetworkPolicy"]
