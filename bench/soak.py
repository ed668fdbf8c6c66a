"""Soak: a fixed SMTP send rate for N minutes while daemons are killed at random times.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 2] [--kill-every 60] [--seed 1]

On a throw-away instance (sk1, 127.0.0.1, ports +19000, removed at the end) with four
mailboxes, `--sessions` threads send `--rate` messages a second to port 25 for `--minutes`;
a refused or interrupted message is sent again with the same Message-ID after 1 s, as a
sending MTA would. Meanwhile a random daemon's container gets SIGKILL (its main process,
from the host: a crash) at random times, `--kill-every` seconds apart on average; nothing
else is done to bring it back.

Each mailbox is polled over IMAP every 0.5 s for new Message-IDs. Printed at the end:
- delivery latency p50/p99/max, from a message's first SMTP attempt to its arrival,
  for all messages and for those that met an outage (sent again at least once);
- accepted, delivered once, duplicated, lost (accepted, never delivered);
- kills and the restarts the engine counted, per container;
- memory per container (usage minus reclaimable page cache) at start, end and peak; the
  growth of a killed container restarts from zero at each kill.
"""

from __future__ import annotations

import argparse
import email
import imaplib
import os
import random
import re
import smtplib
import statistics
import subprocess
import threading
import time
from collections import Counter
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from _instance import DOMAIN, HOST, PASSWORD, USER, BenchInstance

from mailctl.engines import get_engine
from mailctl.stack import DAEMONS

USERS = ("soakann", "soakben", "soakcid", "soakdot")
MIB = 1024 * 1024


class Soak:
    def __init__(self, mail: BenchInstance, args: argparse.Namespace):
        self.mail, self.args = mail, args
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.first_try: dict[str, float] = {}  # Message-ID -> first SMTP attempt
        self.accepted: dict[str, str] = {}  # Message-ID -> mailbox
        self.retried: set[str] = set()
        self.arrived: dict[str, float] = {}
        self.copies: Counter = Counter()
        self.kills: Counter = Counter()
        self.stop = threading.Event()
        self.engine = get_engine("podman")
        self.memory: dict[str, list[int]] = {d: [] for d in DAEMONS}

    # -- sending ---------------------------------------------------------------------

    def sender(self, n: int, start: float, total: int) -> None:
        for seq in range(n, total, self.args.sessions):
            time.sleep(max(0.0, start + seq / self.args.rate - time.monotonic()))
            user = USERS[seq % len(USERS)]
            msg = EmailMessage()  # from the bench user: a bounce would land in its INBOX
            msg["From"], msg["To"], msg["Subject"] = f"{USER}@{DOMAIN}", f"{user}@{DOMAIN}", f"soak {seq}"
            msg["Message-ID"] = make_msgid(domain="soak.example.net")
            msg["Date"] = formatdate()
            msg.set_content(f"soak message {seq}\n")
            mid = msg["Message-ID"]
            with self.lock:
                self.first_try[mid] = time.monotonic()
            while not self.stop.is_set():
                try:
                    with smtplib.SMTP(HOST, self.mail.port(25), timeout=60) as s:
                        s.ehlo("client.example.net")
                        s.send_message(msg)
                    with self.lock:
                        self.accepted[mid] = user
                    break
                except (OSError, smtplib.SMTPException):
                    with self.lock:
                        self.retried.add(mid)
                    time.sleep(1)

    # -- watching ----------------------------------------------------------------------

    def poller(self, user: str) -> None:
        seen_uid = 0
        conn = None
        while True:
            try:
                if conn is None:
                    conn = imaplib.IMAP4_SSL(HOST, self.mail.port(993), ssl_context=_insecure(), timeout=20)
                    conn.login(user, PASSWORD)
                conn.select("INBOX", readonly=True)
                _, data = conn.uid("FETCH", f"{seen_uid + 1}:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
                now = time.monotonic()
                for item in data:
                    if not isinstance(item, tuple):
                        continue
                    uid = int(item[0].split(b"UID ")[1].split()[0])
                    if uid <= seen_uid:
                        continue  # "N:*" returns the last message when none is newer
                    seen_uid = uid
                    mid = email.message_from_bytes(item[1])["Message-ID"]
                    with self.lock:
                        self.copies[mid] += 1
                        self.arrived.setdefault(mid, now)
            except (OSError, imaplib.IMAP4.error):
                conn = None  # dovecot restarting: log in again
            if self.stop.is_set() and self.drained():
                return
            time.sleep(0.5)

    def drained(self) -> bool:
        with self.lock:
            return all(mid in self.arrived for mid in self.accepted)

    def killer(self, until: float) -> None:
        while True:
            wait = self.rng.expovariate(1 / self.args.kill_every)
            if time.monotonic() + wait > until or self.stop.wait(wait):
                return
            daemon = self.rng.choice(DAEMONS)
            pid = subprocess.run(["podman", "inspect", "-f", "{{.State.Pid}}", f"{self.mail.name}-{daemon}"],
                                 capture_output=True, text=True).stdout.strip()
            if pid not in ("", "0"):
                os.kill(int(pid), 9)
                self.kills[daemon] += 1
                print(f"  {time.strftime('%H:%M:%S')} killed {daemon}", flush=True)

    def sample_memory(self) -> None:
        for daemon in DAEMONS:
            try:
                self.memory[daemon].append(self.engine.stats(f"{self.mail.name}-{daemon}"))
            except Exception:  # noqa: BLE001 - a container being restarted has no sample
                pass

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> None:
        args = self.args
        total = int(args.minutes * 60 * args.rate)
        self.sample_memory()
        start = time.monotonic()
        until = start + args.minutes * 60
        pollers = [threading.Thread(target=self.poller, args=(u,), daemon=True) for u in USERS]
        senders = [threading.Thread(target=self.sender, args=(n, start, total)) for n in range(args.sessions)]
        killer = threading.Thread(target=self.killer, args=(until,), daemon=True)
        for t in (*pollers, *senders, killer):
            t.start()
        while any(t.is_alive() for t in senders):
            self.sample_memory()
            time.sleep(10)
        self.stop.set()
        deadline = time.monotonic() + args.drain
        while not self.drained() and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(2)  # a last poll for late duplicates
        self.sample_memory()
        self.report(total)

    def bounces(self) -> int:
        conn = imaplib.IMAP4_SSL(HOST, self.mail.port(993), ssl_context=_insecure(), timeout=20)
        try:
            conn.login(USER, PASSWORD)
            _, data = conn.status("INBOX", "(MESSAGES)")
            return int(re.search(rb"MESSAGES (\d+)", data[0])[1])
        finally:
            conn.logout()

    def report(self, total: int) -> None:
        restarts = {c.daemon: c.restarts for c in self.engine.list_containers(self.mail.name)}
        with self.lock:
            latencies = sorted(self.arrived[m] - self.first_try[m] for m in self.accepted if m in self.arrived)
            met_outage = sorted(self.arrived[m] - self.first_try[m] for m in self.retried if m in self.arrived)
            lost = [m for m in self.accepted if m not in self.arrived]
            duplicated = [m for m, n in self.copies.items() if n > 1]
        print(f"\nsoak: {self.args.minutes:g} min at {self.args.rate:g} msg/s, {self.args.sessions} sessions, "
              f"a kill every ~{self.args.kill_every:g} s (seed {self.args.seed})")
        print(f"  sent {total}, accepted {len(self.accepted)}, delivered {len(latencies)}, "
              f"lost {len(lost)}, duplicated {len(duplicated)}, sent again after a refusal {len(self.retried)}")
        print(f"  bounces received by the sender: {self.bounces()}")
        print(f"  latency all        {_percentiles(latencies)}")
        print(f"  latency met outage {_percentiles(met_outage)}")
        print(f"  {'container':<10} {'kills':>5} {'restarts':>8} {'mem start':>10} {'mem end':>8} {'peak':>8}")
        for daemon in DAEMONS:
            mem = self.memory[daemon] or [0]
            print(f"  {daemon:<10} {self.kills[daemon]:>5} {restarts.get(daemon, 0):>8} "
                  f"{mem[0] / MIB:>8.1f}Mi {mem[-1] / MIB:>6.1f}Mi {max(mem) / MIB:>6.1f}Mi")


def _percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return (f"p50 {statistics.median(values):.2f} s, p99 {p99:.2f} s, max {values[-1]:.2f} s "
            f"({len(values)} messages)")


def _insecure():
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=2, help="messages a second")
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=60, help="mean seconds between kills")
    parser.add_argument("--drain", type=float, default=180, help="seconds to wait for the last deliveries")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--instance", default="sk1")
    parser.add_argument("--offset", type=int, default=19000)
    args = parser.parse_args()
    with BenchInstance(args.instance, args.offset) as mail:
        for user in USERS:
            mail.run("add-user", {"user": user, "password": PASSWORD})
        Soak(mail, args).run()


if __name__ == "__main__":
    main()
