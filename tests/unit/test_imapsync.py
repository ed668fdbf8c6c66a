"""When the scheduler starts a sync job, and the doveadm command a job makes."""

import datetime

from mailctl.imapsync import _reason, due, sync_command

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
JOB = {"localuser": "u", "remotehost": "old", "remoteport": 993, "security": "tls", "remoteuser": "r",
       "folders_exclude": ["Spam"], "interval_minutes": 0, "enabled": True}


def ago(minutes):
    return {"state": "done", "started": (NOW - datetime.timedelta(minutes=minutes)).isoformat()}


def test_one_shot_runs_once_and_periodic_after_its_interval():
    assert due(JOB, {"state": "never_run"}, NOW)
    assert not due(JOB, ago(1000), NOW)
    periodic = {**JOB, "interval_minutes": 10}
    assert not due(periodic, ago(5), NOW)
    assert due(periodic, ago(10), NOW)
    assert not due(periodic, {"state": "running", "started": ago(60)["started"]}, NOW)
    assert not due({**periodic, "enabled": False}, ago(60), NOW)


def test_command_is_a_one_way_pull_with_exclusions():
    command = sync_command(JOB, "secret")
    assert command[0] == "doveadm" and command[-1] == "imapc:"
    assert command[command.index("sync"):][:5] == ["sync", "-1", "-R", "-u", "u"]
    assert ["-x", "Spam"] == command[command.index("-x"):command.index("-x") + 2]
    assert "imapc_ssl=imaps" in command


def test_reason_never_repeats_the_password():
    assert _reason("Error: imapc: Authentication failed: [AUTHENTICATIONFAILED]") == "remote authentication failed"
    assert "s3cret" not in _reason("Error: bad thing imapc_password=s3cret here")
