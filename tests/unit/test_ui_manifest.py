"""ui-manifest.json: valid against its schema and consistent with the actions and the stack."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft7Validator

from mailctl.stack import DAEMONS, PORTS

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = json.loads((ROOT / "ui-manifest.json").read_text())


def test_manifest_validates_against_its_schema():
    schema = json.loads((ROOT / "ui-manifest.schema.json").read_text())
    Draft7Validator.check_schema(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in Draft7Validator(schema).iter_errors(MANIFEST)]
    assert errors == []


def test_schema_refuses_a_route_without_actions():
    schema = json.loads((ROOT / "ui-manifest.schema.json").read_text())
    broken = {**MANIFEST, "routes": [{"path": "status", "title": "Status"}]}
    assert not Draft7Validator(schema).is_valid(broken)


def test_every_route_action_exists():
    missing = [(r["path"], a) for r in MANIFEST["routes"] for a in r["actions"]
               if not (ROOT / "actions" / a / "validate-input.json").is_file()]
    assert missing == []


def test_route_paths_are_unique():
    paths = [r["path"] for r in MANIFEST["routes"]]
    assert len(paths) == len(set(paths))


def test_images_ports_and_version_match_the_stack():
    assert sorted(MANIFEST["images"]) == sorted(f"mail-{d}" for d in DAEMONS)
    assert MANIFEST["ports"] == {name: port for name, (_, port, _) in PORTS.items()}
    assert (ROOT / MANIFEST["version_file"]).is_file()
