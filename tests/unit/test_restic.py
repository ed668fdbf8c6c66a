"""restic's messages turned into NS8 errors, and its backup summary read."""

import json

import pytest

from mailctl.restic import ResticError, _error, _summary


@pytest.mark.parametrize(("stderr", "field", "error"), [
    ("Fatal: wrong password or no key found\n", "password", "wrong_password"),
    ("Fatal: unable to open config file: stat /x/config: no such file or directory\n"
     "Is there a repository at the following location?\n/x\n", "repository", "repository_not_found"),
    ("Fatal: invalid id \"abc\": no matching ID found for prefix \"abc\"\n", "snapshot", "snapshot_not_found"),
    ("Fatal: something else\n", "repository", "restic_failed"),
])
def test_restic_errors_name_the_field(stderr, field, error):
    exc = _error("/x", stderr)
    assert (exc.field, exc.error) == (field, error)


def test_summary_is_the_last_summary_line():
    out = "\n".join([json.dumps({"message_type": "status", "percent_done": 0.5}),
                     json.dumps({"message_type": "summary", "snapshot_id": "abcdef0123", "data_added": 42})])
    assert _summary(out)["data_added"] == 42
    with pytest.raises(ResticError):
        _summary("not json\n")
