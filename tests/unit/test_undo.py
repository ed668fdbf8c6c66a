"""Undo steps of a failed action: all run, newest first; a failing one is logged, not hidden."""

from __future__ import annotations

import logging

from mailctl.runner import undo_steps


def test_a_failing_undo_step_is_logged_and_the_others_still_run(caplog):
    ran = []

    def put_back_secret():
        ran.append("secret")

    def remove_ldap_entry():
        raise OSError("ldap server unreachable")

    with caplog.at_level(logging.ERROR, logger="mailctl.runner"):
        failures = undo_steps("add-user", [put_back_secret, remove_ldap_entry])
    assert ran == ["secret"]
    assert failures == [f"{remove_ldap_entry.__qualname__}: ldap server unreachable"]
    assert "add-user: undo step" in caplog.text and "ldap server unreachable" in caplog.text
