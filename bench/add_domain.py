"""Issues #4 and #14: how soon a new domain is live for SMTP, how soon a removed one is
refused, and that neither needs a daemon reload.

    .venv/bin/python bench/add_domain.py [--runs 10]

On a throw-away instance (te1, 127.0.0.1, ports +24000, its own temporary state dir, one
user in example.org), `--runs` times:

1. an SMTP session to port 25 checks that RCPT TO <benchuser@NEW-DOMAIN> is refused with
   "Relay access denied" (the domain is unknown);
2. `mailctl run add-domain` adds NEW-DOMAIN (addusers on);
3. from the moment the command returns, RCPT TO <benchuser+N@NEW-DOMAIN> (a new address
   each time, so no cache can answer) is repeated until it is no longer "Relay access
   denied": that delay is the time to effect;
4. `mailctl run remove-domain` removes it again; from its return, RCPT TO
   <benchuser+N@NEW-DOMAIN> is repeated until it is "Relay access denied" again: the time
   to refusal.

Printed: the median time to effect and the median duration of the add-domain command,
beside the median time of a plain `postfix reload` (run in the postfix container, 5
times, after the domain runs) - what a design that reloads postfix on every change would
add - and the number of postfix reloads or restarts during the add-domain steps (2 and 3)
and during the remove-domain steps (4), from the "reload -- version" and "starting the
Postfix mail system" lines of the postfix log (must be 0 both). Targets: median effect
visible < 200 ms after add-domain; remove-domain < 300 ms with 0 reloads (issue #14). The
instance is removed at the end.
"""

from __future__ import annotations

import argparse
import smtplib
import statistics
import subprocess
import sys
import time
import uuid

from _instance import HOST, USER, BenchInstance

from mailctl import __version__

TARGET_MS = 200.0
REMOVE_TARGET_MS = 300.0
POLL_TIMEOUT = 30.0
RELOAD_RUNS = 5
RESTART_MARKS = ("reload -- version", "starting the Postfix mail system")


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


class RcptProbe:
    """One SMTP session on port 25 that asks RCPT TO questions after one MAIL FROM.

    smtpd slows a client down after 10 refused commands (smtpd_soft_error_limit): the
    session is renewed after 5 refusals, so every answer comes at full speed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.smtp: smtplib.SMTP | None = None
        self.refused = 0

    def _session(self) -> smtplib.SMTP:
        if self.smtp is None or self.refused >= 5:
            self.close()
            self.smtp = smtplib.SMTP(HOST, self.port, timeout=10)
            self.smtp.ehlo("client.example.net")
            self.smtp.mail("sender@example.net")
            self.refused = 0
        return self.smtp

    def rcpt(self, address: str) -> tuple[int, str]:
        code, msg = self._session().rcpt(address)
        if code >= 400:
            self.refused += 1
        return code, msg.decode(errors="replace")

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except smtplib.SMTPException:
                pass
            self.smtp = None


def restarts(mail: BenchInstance) -> int:
    logs = mail.logs("postfix")
    return sum(logs.count(m) for m in RESTART_MARKS)


def timed_mailctl(mail: BenchInstance, action: str, data: dict) -> float:
    start = time.monotonic()
    mail.run(action, data)
    return time.monotonic() - start


def domain_run(mail: BenchInstance, probe: RcptProbe, domain: str) -> tuple[float, float, int, str]:
    """(seconds add-domain took, seconds from its return to effect, probes, last answer)."""
    code, msg = probe.rcpt(f"{USER}@{domain}")
    if "Relay access denied" not in msg:
        raise SystemExit(f"bench: {domain} accepted before add-domain: {code} {msg}")
    took = timed_mailctl(mail, "add-domain", {"domain": domain, "addusers": True, "addgroups": False,
                                              "catchall": None, "bccaddr": None, "description": "bench"})
    returned = time.monotonic()
    probes = 0
    while True:
        probes += 1
        code, msg = probe.rcpt(f"{USER}+{probes}@{domain}")
        effect = time.monotonic() - returned
        if "Relay access denied" not in msg:
            return took, effect, probes, f"{code} {msg}"
        if effect > POLL_TIMEOUT:
            raise SystemExit(f"bench: {domain} still refused {POLL_TIMEOUT:.0f} s after add-domain: {msg}")


def refusal_after_remove(mail: BenchInstance, probe: RcptProbe, domain: str) -> tuple[float, float]:
    """(seconds remove-domain took, seconds from its return until a new RCPT is refused)."""
    took = timed_mailctl(mail, "remove-domain", {"domain": domain})
    returned = time.monotonic()
    n = 0
    while True:
        n += 1
        code, msg = probe.rcpt(f"{USER}+gone{n}@{domain}")
        effect = time.monotonic() - returned
        if "Relay access denied" in msg:
            return took, effect
        if effect > POLL_TIMEOUT:
            raise SystemExit(f"bench: {domain} still accepted {POLL_TIMEOUT:.0f} s after remove-domain: {msg}")


def postfix_reload_times(mail: BenchInstance) -> list[float]:
    times = []
    for _ in range(RELOAD_RUNS):
        start = time.monotonic()
        subprocess.run(["podman", "exec", f"{mail.name}-postfix", "postfix", "reload"], capture_output=True,
                       check=True)
        times.append(time.monotonic() - start)
        time.sleep(0.5)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="domains added and removed (default 10)")
    parser.add_argument("--instance", default="te1")
    parser.add_argument("--offset", type=int, default=24000)
    args = parser.parse_args()
    if not 1 <= args.runs <= 100:
        parser.error("--runs: between 1 and 100")

    tag = uuid.uuid4().hex[:6]
    adds, effects, probes, removes, refusals, rtts = [], [], [], [], [], []
    during = removing = 0
    with BenchInstance(args.instance, args.offset) as mail:
        for i in range(args.runs):
            domain = f"d{i}-{tag}.example.com"
            probe = RcptProbe(mail.port(25))
            probe.rcpt(f"{USER}@example.org")  # opens the session
            rtt_start = time.monotonic()
            probe.rcpt(f"{USER}@example.org")
            rtts.append(time.monotonic() - rtt_start)
            before = restarts(mail)
            took, effect, n, answer = domain_run(mail, probe, domain)
            during += restarts(mail) - before
            adds.append(took)
            effects.append(effect)
            probes.append(n)
            before = restarts(mail)
            took, refused = refusal_after_remove(mail, probe, domain)
            probe.close()
            time.sleep(0.2)  # a reload, if any, would be logged by now
            removing += restarts(mail) - before
            removes.append(took)
            refusals.append(refused)
        reloads = postfix_reload_times(mail)

    print(f"add-domain to SMTP, instance {args.instance} (mail {__version__}), {args.runs} domains")
    print()
    print(f"time to effect after add-domain returns: median {statistics.median(effects) * 1000:.1f} ms, "
          f"max {max(effects) * 1000:.1f} ms (RCPT probes per run: {', '.join(map(str, probes))}) "
          f"target: median < {TARGET_MS:.0f} ms  {mark(statistics.median(effects) * 1000 < TARGET_MS)}")
    print(f"  (one RCPT round trip to a known address: median {statistics.median(rtts) * 1000:.1f} ms; "
          f"last answer: {answer})")
    from_start = [a + e for a, e in zip(adds, effects, strict=True)]
    print(f"from the start of add-domain to effect: median {statistics.median(from_start) * 1000:.0f} ms")
    print(f"mailctl run add-domain:    median {statistics.median(adds) * 1000:.0f} ms "
          f"(min {min(adds) * 1000:.0f}, max {max(adds) * 1000:.0f})")
    remove_ms = statistics.median(removes) * 1000
    print(f"mailctl run remove-domain: median {remove_ms:.0f} ms (min {min(removes) * 1000:.0f}, max "
          f"{max(removes) * 1000:.0f})  target < {REMOVE_TARGET_MS:.0f} ms  {mark(remove_ms < REMOVE_TARGET_MS)}")
    print(f"time to refusal after remove-domain returns: median {statistics.median(refusals) * 1000:.1f} ms, "
          f"max {max(refusals) * 1000:.1f} ms")
    print(f"plain `postfix reload` (podman exec, {RELOAD_RUNS} runs): median "
          f"{statistics.median(reloads) * 1000:.0f} ms (min {min(reloads) * 1000:.0f}, max {max(reloads) * 1000:.0f})")
    print(f"postfix reloads/restarts during the {args.runs} add-domain runs: {during}  "
          f"must be 0  {mark(during == 0)}")
    print(f"postfix reloads/restarts during the {args.runs} remove-domain runs: {removing}  "
          f"must be 0  {mark(removing == 0)}")
    ok = during == 0 and removing == 0 and statistics.median(effects) * 1000 < TARGET_MS
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
