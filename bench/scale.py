"""Issue 14: the cost of the usual operations as domains, users and addresses grow.

For each scale (default 1,000 users / 10,000 addresses, then 10,000 users / 100,000
addresses; 50 domains both times) a throw-away instance (`BenchInstance`, default sc1 on
127.0.0.1, ports +26000) is filled through fast bulk paths, not the actions:

- 49 domains besides example.org (addusers on) with `mailctl.domains.put_domain`, and the
  addresses (`a<N>@d<NN>.scale.example`, each to one user) with `mailctl.addresses.put_address`,
  all in one transaction of the instance's state (what add-domain / add-address write);
- the users as LDAP entries added to the embedded slapd over LDAP (ldap3, the attributes
  of `EmbeddedDirectory.add_user`, one password hash computed once for all).

Then it measures, on the running daemons:

- RCPT TO latency on port 25 (p50/p99 in ms) for existing addresses (explicit ones and
  user@domain of the addusers domains) and unknown ones, each address asked once (smtpd
  keeps the resolution of its last 100 sender/recipient pairs); sessions are renewed
  after 5 refusals, outside the timing;
- IMAP LOGIN latency (after STARTTLS, the login alone) for distinct users;
- `list-addresses`, `list-user-mailboxes` (in-process runner, what the web API pays: the
  median of 3 and the first, which for list-user-mailboxes also fills dovecot's quota_clone
  table of a new container through doveadm; and `mailctl run`, a new process),
  `add-address` and `remove-domain` (a filled domain with its addresses) in-process, with
  the daemon reloads they caused (configuration swaps and the reload lines of the postfix
  and dovecot logs);
- the memory of each container (podman stats).

Printed: one table per scale, the growth, and PASS/MISS against the targets of issue 14:
RCPT p99 < 5 ms at the large scale and < 2x growth; every list action < 1 s; add-address
and remove-domain < 300 ms with 0 daemon reloads. Figures depend on the host's load,
printed with them. Exits 1 when a target is missed.

    .venv/bin/python bench/scale.py [--scales 1000:10000,10000:100000] [--samples 400]
"""

from __future__ import annotations

import argparse
import imaplib
import os
import random
import smtplib
import ssl
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _instance import DOMAIN, HOST, USER, BenchInstance  # noqa: E402

from mailctl import runner  # noqa: E402
from mailctl.addresses import put_address  # noqa: E402
from mailctl.context import EMBEDDED_LDAP  # noqa: E402
from mailctl.directory import FIRST_ID, hashed_password, open_embedded  # noqa: E402
from mailctl.domains import new_domain, put_domain  # noqa: E402
from mailctl.settings import Instance  # noqa: E402
from mailctl.state import Store  # noqa: E402

DOMAINS = 50
PASSWORD = "Scale-Pass-4711"
RCPT_P99_MS, RCPT_GROWTH, LIST_MS, CHANGE_MS = 5.0, 2.0, 1000.0, 300.0
RELOAD_MARKS = {"postfix": ("reload -- version", "starting the Postfix mail system"),
                "dovecot": ("reloading configuration", "starting up for")}


def domain_names() -> list[str]:
    return [DOMAIN, *(f"d{i:02d}.scale.example" for i in range(1, DOMAINS))]


def user_name(i: int) -> str:
    return f"su{i:05d}"


def fill(mail: BenchInstance, users: int, addresses: int) -> Instance:
    """The domains, users and addresses of one scale; returns the instance."""
    instance = Instance(name=mail.name, state_root=mail.state_dir, bind=HOST, port_offset=mail.offset)
    store = Store(instance.db_path)
    domains = domain_names()
    start = time.monotonic()
    with store.transaction():
        for name in domains[1:]:
            put_domain(store, new_domain(name, addusers=True, description="scale bench"))
        for i in range(addresses):
            put_address(store, f"a{i:06d}", domains[i % DOMAINS], [{"dtype": "user", "name": user_name(i % users)}],
                        description=f"scale address {i}")
    sql_s = time.monotonic() - start
    start = time.monotonic()
    slapadd_users(mail, users)
    directory = open_embedded(instance, store)  # slapd answers again, with every user
    found = len(directory.users())
    directory.close()
    store.close()
    if found != users + 1:  # and the bench user
        raise SystemExit(f"bench: the directory lists {found} users after slapadd, expected {users + 1}")
    print(f"  filled: {DOMAINS} domains and {addresses} addresses (state, one transaction) in {sql_s:.1f} s, "
          f"{users} LDAP users (slapadd) in {time.monotonic() - start:.1f} s", flush=True)
    return instance


def slapadd_users(mail: BenchInstance, users: int) -> None:
    """Add the users to the embedded directory offline: slapd is stopped, slapadd loads an
    LDIF into its volume (a one-off container of the same image and mounts), slapd starts.

    Adding them over LDAP costs an fsync each (about 60 ms on a loaded host)."""
    secret = hashed_password(PASSWORD)
    base = f"ou=People,{EMBEDDED_LDAP['base_dn']}"
    ldif = "".join(
        f"dn: uid={user_name(i)},{base}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n"
        f"objectClass: shadowAccount\nuid: {user_name(i)}\ncn: {user_name(i)}\nsn: {user_name(i)}\n"
        f"uidNumber: {FIRST_ID + 10 + i}\ngidNumber: {FIRST_ID}\nhomeDirectory: /var/lib/vmail/{user_name(i)}\n"
        f"loginShell: /usr/sbin/nologin\nuserPassword: {secret}\n\n" for i in range(users))
    container = f"{mail.name}-openldap"
    image = subprocess.run(["podman", "inspect", "-f", "{{.ImageName}}", container], capture_output=True,
                           text=True, check=True).stdout.strip()
    subprocess.run(["podman", "stop", "-t", "10", container], capture_output=True, check=True)
    try:
        load = subprocess.run(
            ["podman", "run", "--rm", "-i", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=8192:8192",
             "--volumes-from", container, "--entrypoint", "sh", image, "-c",
             "slapadd -q -f /config/current/openldap/slapd.conf -l /dev/stdin && chown -R openldap:openldap "
             "/var/lib/ldap"], input=ldif, capture_output=True, text=True, check=False)
    finally:
        subprocess.run(["podman", "start", container], capture_output=True, check=True)
    if load.returncode != 0:
        raise SystemExit(f"bench: slapadd failed: {load.stderr.strip()[-500:]}")
    deadline = time.monotonic() + 60
    # Any LDAP answer will do (slapd refuses anonymous binds: exit 48); 255 is "can't contact".
    while subprocess.run(["podman", "exec", container, "ldapsearch", "-x", "-H", "ldap://localhost", "-b",
                          base, "-s", "base", "dn"], capture_output=True).returncode == 255:
        if time.monotonic() > deadline:
            raise SystemExit("bench: slapd did not answer 60 s after slapadd")
        time.sleep(0.5)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def rcpt_times(mail: BenchInstance, addresses: list[str], expect_ok: bool) -> list[float]:
    """RCPT TO round trips in ms, one per address; SystemExit if an answer is not the expected one."""
    times: list[float] = []
    smtp, refused = None, 0
    sender = f"scale-{random.randrange(10**9)}@example.net"
    for address in addresses:
        if smtp is None or refused >= 5:
            if smtp is not None:
                smtp.quit()
            smtp = smtplib.SMTP(HOST, mail.port(25), timeout=30)
            smtp.ehlo("client.example.net")
            smtp.mail(sender)
            refused = 0
        start = time.perf_counter()
        code, msg = smtp.rcpt(address)
        times.append((time.perf_counter() - start) * 1000)
        if (code == 250) != expect_ok:
            raise SystemExit(f"bench: RCPT TO <{address}>: {code} {msg.decode(errors='replace')}")
        refused += code >= 400
    if smtp is not None:
        smtp.quit()
    return times


def imap_login_times(mail: BenchInstance, users: list[str]) -> list[float]:
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE  # the instance's self-signed certificate
    times = []
    for user in users:
        imap = imaplib.IMAP4(HOST, mail.port(143), timeout=30)
        imap.starttls(tls)
        start = time.perf_counter()
        imap.login(user, PASSWORD)
        times.append((time.perf_counter() - start) * 1000)
        imap.logout()
    return times


def reload_marks(mail: BenchInstance) -> int:
    """Reloads and restarts so far, from the configuration generation and the daemons' logs."""
    count = 0
    for daemon, marks in RELOAD_MARKS.items():
        logs = mail.logs(daemon)
        count += sum(logs.count(m) for m in marks)
    return count


def generation(mail: BenchInstance) -> str:
    return str((mail.state_dir / mail.name / "config" / "current").resolve())


def in_process(instance: Instance, action: str, data: dict) -> tuple[float, object]:
    start = time.perf_counter()
    out = runner.run_action(instance, action, data)
    return (time.perf_counter() - start) * 1000, out


def change_times(mail: BenchInstance, instance: Instance, steps: list[tuple[str, dict]]) -> tuple[list[float], int]:
    """In-process times (ms) of the steps, and the daemon reloads and swaps they caused."""
    marks, gen = reload_marks(mail), generation(mail)
    times, swaps = [], 0
    for action, data in steps:
        ms, _ = in_process(instance, action, data)
        times.append(ms)
        if generation(mail) != gen:
            swaps, gen = swaps + 1, generation(mail)
    time.sleep(0.5)  # a reload, if any, is logged by now
    return times, swaps + reload_marks(mail) - marks


def memory(mail: BenchInstance) -> dict[str, str]:
    out = subprocess.run(["podman", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"],
                         capture_output=True, text=True, check=False).stdout
    mem = {}
    for line in out.splitlines():
        name, _, usage = line.partition(" ")
        if name.startswith(f"{mail.name}-"):
            mem[name.removeprefix(f"{mail.name}-")] = usage.split("/")[0].strip()
    return mem


def measure(mail: BenchInstance, instance: Instance, users: int, addresses: int, samples: int) -> dict:
    rng = random.Random(users)
    domains = domain_names()
    explicit = [f"a{i:06d}@{domains[i % DOMAINS]}" for i in rng.sample(range(addresses), samples // 2)]
    by_user = [f"{user_name(rng.randrange(users))}@{rng.choice(domains)}" for _ in range(samples // 2)]
    existing = explicit + by_user
    rng.shuffle(existing)
    tag = rng.randrange(10**6)
    unknown = [f"nobody{i}-{tag}@{rng.choice(domains)}" for i in range(samples)]
    rcpt_times(mail, existing[:20], True)  # warm: first lookups open the maps
    figures: dict = {"users": users, "addresses": addresses}
    figures["rcpt_ok"] = rcpt_times(mail, existing, True)
    figures["rcpt_unknown"] = rcpt_times(mail, unknown, False)
    figures["imap_login"] = imap_login_times(mail, [user_name(i) for i in rng.sample(range(users), 40)])
    os.environ.update({k: v for k, v in mail.env.items() if k.startswith("MAIL_")})
    for action in ("list-addresses", "list-user-mailboxes"):
        runs = [in_process(instance, action, {}) for _ in range(3)]
        figures[action] = [ms for ms, _ in runs]
        start = time.perf_counter()
        mail.mailctl("run", action)
        figures[f"{action} (mailctl run)"] = (time.perf_counter() - start) * 1000
    listed = runs[-1][1]["user_mailboxes"]
    if len(listed) != users + 1:
        raise SystemExit(f"bench: list-user-mailboxes listed {len(listed)} users, expected {users + 1}")
    figures["add-address"], figures["add-address reloads"] = change_times(mail, instance, [
        ("add-address", {"local": f"new{i}", "atype": "domain", "domain": DOMAIN,
                         "destinations": [{"dtype": "user", "name": USER}]}) for i in range(5)])
    figures["remove-domain"], figures["remove-domain reloads"] = change_times(mail, instance, [
        ("remove-domain", {"domain": name}) for name in domains[-3:]])
    # The removed domains' addresses are refused at once.
    rcpt_times(mail, [f"a{i:06d}@{domains[i % DOMAINS]}" for i in range(DOMAINS - 3, DOMAINS)], False)
    figures["memory"] = memory(mail)
    return figures


def ms(values: list[float] | float) -> str:
    return f"{statistics.median(values) if isinstance(values, list) else values:8.1f}"


def report(f: dict) -> None:
    print(f"\n{f['users']} users, {f['addresses']} addresses, {DOMAINS} domains (ms; host load "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())})")
    for key, label in (("rcpt_ok", "RCPT TO, existing"), ("rcpt_unknown", "RCPT TO, unknown")):
        v = f[key]
        print(f"  {label:34} p50 {percentile(v, 50):7.2f}  p99 {percentile(v, 99):7.2f}  ({len(v)} addresses)")
    v = f["imap_login"]
    print(f"  {'IMAP LOGIN':34} p50 {percentile(v, 50):7.2f}  p99 {percentile(v, 99):7.2f}  ({len(v)} users)")
    for action in ("list-addresses", "list-user-mailboxes"):
        print(f"  {action:34} in-process median {ms(f[action])}   first {f[action][0]:8.1f}   "
              f"mailctl run {ms(f[action + ' (mailctl run)'])}")
    for action in ("add-address", "remove-domain"):
        print(f"  {action:34} in-process median {ms(f[action])}   max {max(f[action]):8.1f}   "
              f"daemon reloads {f[action + ' reloads']}")
    print("  memory: " + ", ".join(f"{k} {v}" for k, v in sorted(f["memory"].items())))


def verdicts(small: dict, large: dict) -> list[tuple[bool, str]]:
    out = []
    for key, label in (("rcpt_ok", "existing"), ("rcpt_unknown", "unknown")):
        p99s, p99 = percentile(small[key], 99), percentile(large[key], 99)
        out.append((p99 < RCPT_P99_MS, f"RCPT p99 ({label}) at {large['addresses']} addresses: {p99:.2f} ms "
                                       f"(< {RCPT_P99_MS:.0f} ms)"))
        growth = f"{small['addresses']} -> {large['addresses']}: {p99s:.2f} -> {p99:.2f} ms"
        out.append((p99 < RCPT_GROWTH * p99s, f"RCPT p99 ({label}) growth {growth} (< {RCPT_GROWTH:.0f}x)"))
    for action in ("list-addresses", "list-user-mailboxes"):
        t = statistics.median(large[action])
        out.append((t < LIST_MS, f"{action} at {large['users']} users / {large['addresses']} addresses: "
                                 f"{t:.0f} ms in-process (< {LIST_MS:.0f} ms)"))
    for action in ("add-address", "remove-domain"):
        t, n = statistics.median(large[action]), large[action + " reloads"]
        out.append((t < CHANGE_MS, f"{action}: {t:.0f} ms in-process (< {CHANGE_MS:.0f} ms)"))
        out.append((n == 0, f"{action}: {n} daemon reloads (0)"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1000:10000,10000:100000",
                        help="USERS:ADDRESSES,... smallest first (default 1000:10000,10000:100000)")
    parser.add_argument("--samples", type=int, default=400, help="RCPT TO addresses per kind (default 400)")
    parser.add_argument("--instance", default="sc1")
    parser.add_argument("--offset", type=int, default=26000)
    args = parser.parse_args()
    scales = [tuple(int(x) for x in s.split(":")) for s in args.scales.split(",")]
    if not 20 <= args.samples <= 5000 or any(u < 50 or a < DOMAINS for u, a in scales):
        parser.error("--samples 20..5000; at least 50 users and 50 addresses per scale")

    results = []
    for users, addresses in scales:
        print(f"scale {users} users / {addresses} addresses: starting {args.instance}", flush=True)
        with BenchInstance(args.instance, args.offset) as mail:
            instance = fill(mail, users, addresses)
            results.append(measure(mail, instance, users, addresses, args.samples))
        report(results[-1])
    if len(results) < 2:
        return 0
    print()
    checks = verdicts(results[0], results[-1])
    for ok, text in checks:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
