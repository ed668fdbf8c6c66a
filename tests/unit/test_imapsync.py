"""When the scheduler starts a sync job, and the doveadm command a job makes."""

import datetime
import subprocess

from mailctl.imapsync import PASSWORD_ENV, _reason, due, remote_env, sync_command

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
    command = sync_command(JOB)
    assert command[command.index("doveadm") - 1:][:1] == ["sh"] and command[-1] == "imapc:"
    assert command[command.index("sync"):][:5] == ["sync", "-1", "-R", "-u", "u"]
    assert ["-x", "Spam"] == command[command.index("-x"):command.index("-x") + 2]
    assert "imapc_ssl=imaps" in command


def test_reason_never_repeats_the_password():
    assert _reason("Error: imapc: Authentication failed: [AUTHENTICATIONFAILED]") == "remote authentication failed"
    assert "s3cret" not in _reason("Error: bad thing imapc_password=s3cret here")


def test_the_password_is_in_the_environment_never_on_the_command_line():
    """A command line is readable by every process of the container (`ps`): the password goes
    in the exec's environment, written by a shell builtin into a private config file."""
    command = sync_command(JOB, "INBOX", "state")
    assert not [arg for arg in command if "imapc_password=" in arg]
    assert remote_env('s3"c\\ret') == {PASSWORD_ENV: 's3\\"c\\\\ret'}


def test_the_password_config_file_is_private_and_removed(tmp_path):
    """The shell part, run for real with a stand-in for doveadm that shows what it would read."""
    fake_doveadm = tmp_path / "doveadm"
    fake_doveadm.write_text('#!/bin/sh\nstat -c %a "$2"; cat "$2"; echo "[$MAIL_IMAPC_PASSWORD]"\n')
    fake_doveadm.chmod(0o755)
    temp = tmp_path / "tmp"
    temp.mkdir()
    script = sync_command(JOB)[2]
    out = subprocess.run(["sh", "-c", script, "sh", str(fake_doveadm)], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "TMPDIR": str(temp), **remote_env('p"w')},
                         check=True).stdout.splitlines()
    assert out[0] == "600"
    assert out[1:] == ["!include /etc/dovecot/dovecot.conf", 'imapc_password = "p\\"w"', "[]"]
    assert list(temp.iterdir()) == []  # removed on exit
