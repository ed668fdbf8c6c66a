"""Queue and relay helpers without containers: log tracing, headers, relay rules and their secrets."""

from __future__ import annotations

import pytest

from mailctl import mailqueue, relayrules
from mailctl.errors import ValidationFailed
from mailctl.state import Store

POSTFIX = """\
2026-11-25T11:15:57.294905133Z Nov 25 11:15:57 mail postfix/smtpd[771]: connect from client[10.0.0.1]
2026-11-25T11:15:57.2949Z Nov 25 11:15:57 mail postfix/smtpd[771]: 47EDB18E67E: client=client[10.0.0.1]
2026-11-25T11:15:57.298114058Z Nov 25 11:15:57 mail postfix/cleanup[776]: 47EDB18E67E: message-id=<m1@x.example>
2026-11-25T11:15:57.3Z Nov 25 11:15:57 mail postfix/cleanup[776]: 5AB0018E67F: message-id=<other@x.example>
2026-11-25T11:15:57.555855464Z Nov 25 11:15:57 mail postfix/qmgr[769]: 47EDB18E67E: from=<a@x.example>, size=428
2026-11-25T11:15:58.1Z Nov 25 11:15:58 mail postfix/smtp[777]: 47EDB18E67E: to=<b@y.example>, status=bounced (no)
2026-11-25T11:15:58.2Z Nov 25 11:15:58 m postfix/bounce[778]: 47EDB18E67E: sender non-delivery notification: 6CC1018E680
2026-11-25T11:15:58.3Z Nov 25 11:15:58 mail postfix/lmtp[779]: 6CC1018E680: to=<a@mailbox.internal>, status=sent
"""
RSPAMD = """\
2026-11-25T11:15:57.5333Z 2026-11-25 11:15:57 #474(rspamd_proxy) <e7b3cf>; proxy; rspamd_redis_connected: skip
2026-11-25T11:15:57.5343Z 2026-11-25 11:15:57 #474(rspamd_proxy) <e7b3cf>; proxy; rspamd_task_write_log: \
id: <m1@x.example>, qid: <47EDB18E67E>, ip: 10.0.0.1
2026-11-25T11:15:57.6Z 2026-11-25 11:15:57 #474(rspamd_proxy) <aaaaaa>; proxy; unrelated
"""
DOVECOT = """\
2026-11-25T11:15:58.31Z Nov 25 11:15:58 lmtp(88): Info: Connect from 10.89.6.7
2026-11-25T11:15:58.32Z Nov 25 11:15:58 lmtp(a)<88><sEsS>: Info: sieve: msgid=<m1@x.example>: stored mail into 'INBOX'
"""


def test_trace_follows_queue_ids_notifications_tasks_in_time_order():
    logs = {"postfix": mailqueue.parse_stamped(POSTFIX), "rspamd": mailqueue.parse_stamped(RSPAMD),
            "dovecot": mailqueue.parse_stamped(DOVECOT)}
    out = mailqueue.trace(logs, "m1@x.example")
    assert out["queue_ids"] == ["47EDB18E67E", "6CC1018E680"]
    daemons = [line["daemon"] for line in out["lines"]]
    assert daemons == ["postfix", "postfix", "rspamd", "rspamd", "postfix", "postfix", "postfix", "postfix",
                       "dovecot"]
    texts = " ".join(line["text"] for line in out["lines"])
    assert "connect from" not in texts and "other@" not in texts and "unrelated" not in texts
    assert out["lines"][0]["time"] == "2026-11-25T11:15:57.294900Z"
    assert mailqueue.trace(logs, "nothing@x.example") == {"message_id": "nothing@x.example", "queue_ids": [],
                                                          "lines": []}


def test_message_ids_from_postcat_headers():
    headers = ("==> AAA111\nReceived: from x\nMessage-ID:\n <folded@x.example>\nSubject: s\n"
               "==> BBB222\nSubject: no id\n==> CCC333\nmessage-id: <c@x.example>\n")
    assert mailqueue.message_ids(headers) == {"AAA111": "<folded@x.example>", "CCC333": "<c@x.example>"}


def test_nexthop_and_transport():
    assert relayrules.nexthop("Smtp.Example.com", 587) == "[smtp.example.com]:587"
    assert relayrules.nexthop("2001:DB8::1", 25) == "[ipv6:2001:db8::1]:25"
    assert relayrules.transport(465) == "smtps" and relayrules.transport(587) == "smtp"


def rule(rule_type, subject, host="h.example.net", port=25, username="", enabled=True, has_password=False):
    return {"rule_type": rule_type, "rule_subject": subject, "host": host, "port": port, "mandatory_tls": False,
            "username": username, "has_password": has_password, "enabled": enabled}


def test_rules_are_listed_in_evaluation_order(tmp_path):
    store = Store(tmp_path / "state.sqlite")
    for r in (rule("wildcard", "*"), rule("recipient", "example.net"), rule("recipient", "a@example.net"),
              rule("sender", "example.org"), rule("sender", "b@example.org")):
        relayrules.put_rule(store, r)
    assert [(r["rule_type"], r["rule_subject"]) for r in relayrules.list_rules(store)] == [
        ("sender", "b@example.org"), ("sender", "example.org"), ("recipient", "a@example.net"),
        ("recipient", "example.net"), ("wildcard", "*")]
    assert relayrules.default_rule(store)["nexthop"] == "[h.example.net]:25"
    relayrules.put_rule(store, rule("wildcard", "*", enabled=False))
    assert relayrules.default_rule(store) is None


def test_sasl_map_keys_enabled_rules_with_credentials():
    rules = [rule("sender", "b@example.org", username="bu", has_password=True),
             rule("sender", "example.org", username="du", has_password=True),
             rule("recipient", "example.net", "r.example.net", 587, username="ru", has_password=True),
             rule("wildcard", "*", username="wu", has_password=True, enabled=False),
             rule("recipient", "example.com", username="nopass")]
    passwords = {"sender:b@example.org": "p b", "sender:example.org": "pd", "recipient:example.net": "pr",
                 "wildcard:*": "pw"}
    lines = relayrules.sasl_map(rules, passwords).splitlines()[1:]
    assert lines == ["b@example.org bu:p b", "@example.org du:pd", "[r.example.net]:587 ru:pr"]


def test_credentials_never_go_to_another_rules_host():
    def reject(field, error, *_):
        raise ValidationFailed([{"field": field, "error": error}])

    passwords = {"wildcard:*": "pw", "sender:example.org": "pd"}
    rules = [rule("wildcard", "*", username="wu", has_password=True),
             rule("sender", "example.org", "d.example.net", username="du", has_password=True)]
    with pytest.raises(ValidationFailed, match="relay_credentials_conflict"):
        relayrules.check_credentials(rules, passwords, rule("recipient", "example.com"), reject)
    with pytest.raises(ValidationFailed, match="relay_credentials_required"):
        relayrules.check_credentials(rules, passwords, rule("sender", "a@example.org", "x.example.net"), reject)
    relayrules.check_credentials(rules, passwords, rule("sender", "a@example.org", "d.example.net"), reject)
    relayrules.check_credentials(rules, passwords, rule("recipient", "example.com", port=2525), reject)
    relayrules.check_credentials(rules, passwords, rule("recipient", "example.com", enabled=False), reject)
