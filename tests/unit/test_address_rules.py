"""Address inputs: errors name the field, also for fields forbidden by a `not required` rule."""

from __future__ import annotations

import pytest

from mailctl.schemas import validation_errors

DEST = [{"dtype": "user", "name": "bob"}]


@pytest.mark.parametrize("action, data, field", [
    ("add-address", {"local": "info", "atype": "wildcard", "domain": "example.org", "destinations": DEST}, "domain"),
    ("add-address", {"local": "info", "atype": "domain", "destinations": DEST}, "domain"),
    ("add-address", {"local": "in..fo", "atype": "wildcard", "destinations": DEST}, "local"),
    ("add-address", {"local": "info", "atype": "wildcard", "destinations": []}, "destinations"),
    ("add-address", {"local": "info", "atype": "wildcard",
                     "destinations": [{"dtype": "external", "name": "not-an-address"}]}, "destinations.0.name"),
    ("alter-address", {"local": "bob", "atype": "addgroup", "destinations": []}, "destinations"),
    ("remove-address", {"local": "postmaster", "atype": "wildcard", "domain": "example.org"}, "domain"),
])
def test_invalid_address_input_names_the_field(action, data, field):
    errors = validation_errors(action, "input", data)
    assert field in [e["field"] for e in errors], errors


def test_valid_address_inputs():
    assert validation_errors("add-address", "input", {"local": "info", "atype": "domain", "domain": "example.org",
                                                      "destinations": DEST, "internal": True}) == []
    assert validation_errors("alter-address", "input", {"local": "bob", "atype": "adduser", "internal": True}) == []
    # a record as list-addresses shows it may be sent back (NS8 ignores the other fields)
    assert validation_errors("alter-address", "input", {"local": "bob", "atype": "adduser", "internal": True,
                                                        "description": "Bob"}) == []
    assert validation_errors("list-addresses", "input", {}) == []
