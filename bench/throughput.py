"""End-to-end SMTP throughput with the filter, without it, and against the bare pipeline.

    .venv/bin/python bench/throughput.py [--messages 500] [--sessions 10] [--sizes 4,64] [--rounds 3]
        [--raw-dir ../shared/bench-raw | --no-raw] [--json FILE]

First, in the same invocation, the bare Postfix -> Dovecot LMTP pipeline of
`../shared/bench-raw` (stock daemons, minimal configuration; its README): `run-baseline.sh
build repeat SESSIONS BYTES ROUNDS ... cleanup` with M=--messages, its end-to-end msg/s
(first connection to the newest delivered file) per size, median of its runs. Every mode of
the module is then printed as a ratio of that ceiling too, against the targets of issue 14
(filter off >= 0.7x at 4 and 64 KiB; filter on >= 0.5x at 4 KiB, >= 0.35x at 64 KiB). The
ceiling's containers have fixed names (bench-postfix, bench-dovecot, port 2525): the bench
stops if they already exist (someone else's run).

On a throw-away instance (te1, 127.0.0.1, ports +34000, its own temporary state dir, one
user in example.org), for each message size (KiB of payload):

- with filter: Postfix's `smtp-source` sends the messages over `--sessions` parallel SMTP
  sessions to port 25; rspamd (antispam, ClamAV) scans each one through the milter;
- bare: the same, with the milter switched off in the running postfix
  (`postconf -e smtpd_milters= non_smtpd_milters=` + `postfix reload`; the rendered
  configuration is put back afterwards with the container's `reload`).

A run lasts from the first SMTP connection until the user's INBOX (IMAP STATUS, polled
every 20 ms) holds every message; throughput = messages / that time. The INBOX is emptied
before each run, and 20 untimed messages warm the pipeline up first. Filter and bare runs
alternate, `--rounds` times each, and the median of each mode is compared, so that a
change of load on a shared host weighs on both. Target: with filter >= 80% of bare.

smtp-source sends the same body every time: after the first message, rspamd answers the
antivirus check from its Redis cache instead of asking clamd again (as it does for any
message it has seen). The instance is removed at the end (`mailctl down --purge`).
"""

from __future__ import annotations

import argparse
import email
import email.message
import imaplib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _instance import DOMAIN, HOST, ROOT, USER, BenchInstance

from mailctl import __version__
from mailctl.stack import DAEMONS, RELOAD_COMMAND

SMTP_SOURCE = "/usr/sbin/smtp-source"
TARGET_RATIO = 0.80
FILTER_DAEMONS = ("rspamd", "redis", "clamav")  # the work the milter adds to each message
RUN_TIMEOUT = 180.0
RAW_DIR = Path(os.environ.get("MAIL_BENCH_RAW", ROOT.parent / "shared" / "bench-raw"))
# Issue 14: minimum ratio to the bare pipeline, by mode and payload KiB.
RAW_TARGETS = {"bare": {4: 0.7, 64: 0.7}, "filter": {4: 0.5, 64: 0.35}}


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def inbox_count(imap: imaplib.IMAP4) -> int:
    _, data = imap.status("INBOX", "(MESSAGES)")
    found = re.search(rb"MESSAGES (\d+)", data[0])
    if not found:
        raise SystemExit(f"bench: unexpected IMAP STATUS reply {data!r}")
    return int(found[1])


def last_header(imap: imaplib.IMAP4) -> email.message.Message:
    imap.select("INBOX", readonly=True)
    _, data = imap.fetch(b"*", "(BODY.PEEK[HEADER])")
    imap.close()  # STATUS of a selected mailbox would report its unsynced view
    return email.message_from_bytes(data[0][1])


def set_filter(mail: BenchInstance, on: bool) -> None:
    """Milter on (the rendered configuration) or off, in the running postfix."""
    if on:
        mail.exec("postfix", *RELOAD_COMMAND)
    else:
        mail.exec("postfix", "postconf", "-e", "smtpd_milters=", "non_smtpd_milters=")
        mail.exec("postfix", "postfix", "reload")
    milters = mail.exec("postfix", "postconf", "-h", "smtpd_milters").strip()
    if bool(milters) != on:
        raise SystemExit(f"bench: postfix smtpd_milters is {milters!r}, wanted the filter {'on' if on else 'off'}")
    time.sleep(1.0)  # smtpd processes started before the reload finish their sessions


def empty_inbox(mail: BenchInstance) -> None:
    mail.exec("dovecot", "doveadm", "expunge", "-u", USER, "mailbox", "INBOX", "all")


def cpu_snapshot(mail: BenchInstance) -> dict[str, float]:
    return {daemon: mail.cpu_seconds(daemon) for daemon in DAEMONS}


def send_and_wait(mail: BenchInstance, imap: imaplib.IMAP4, count: int, size: int, sessions: int) -> float:
    """Seconds from the first SMTP connection until `count` new messages are in the INBOX."""
    before = inbox_count(imap)
    cmd = [SMTP_SOURCE, "-s", str(sessions), "-m", str(count), "-l", str(size), "-M", "client.example.net",
           "-f", "sender@example.net", "-t", f"{USER}@{DOMAIN}", "-S", "throughput bench",
           f"{HOST}:{mail.port(25)}"]
    start = time.monotonic()
    source = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        arrived = inbox_count(imap) - before
        now = time.monotonic()
        if arrived >= count:
            break
        if source.poll() is not None and source.returncode != 0:
            raise SystemExit(f"bench: smtp-source failed: {source.stderr.read().strip()}")
        if now - start > RUN_TIMEOUT:
            source.kill()
            queue = mail.exec("postfix", "postqueue", "-p").strip().splitlines()
            raise SystemExit(f"bench: only {arrived}/{count} messages arrived in {RUN_TIMEOUT:.0f} s; "
                             f"postfix queue: {' | '.join(queue[-6:])}")
        time.sleep(0.02)
    source.wait()
    if source.returncode != 0:
        raise SystemExit(f"bench: smtp-source failed: {source.stderr.read().strip()}")
    return now - start


def raw_ceiling(raw_dir: Path, messages: int, sessions: int, sizes: list[int], rounds: int) -> dict[int, list[float]]:
    """End-to-end msg/s of each run of ../shared/bench-raw, by payload KiB."""
    script = raw_dir / "run-baseline.sh"
    if not script.exists():
        raise SystemExit(f"bench: no {script} (--raw-dir, MAIL_BENCH_RAW, or --no-raw)")
    busy = subprocess.run(["podman", "container", "exists", "bench-postfix"], check=False).returncode == 0
    if busy:
        raise SystemExit("bench: a bench-raw run is under way (container bench-postfix exists): try later")
    with tempfile.TemporaryDirectory(prefix="bench-raw-") as res:
        steps = ["build"]
        for kib in sizes:
            steps += ["repeat", str(sessions), str(kib * 1024), str(rounds)]
        env = {**os.environ, "M": str(messages), "RES": res, "SRC_OPTS": ""}
        p = subprocess.run(["bash", str(script), *steps, "cleanup"], env=env, capture_output=True, text=True,
                           check=False, timeout=3600)
        tsv = Path(res, "runs.tsv")
        lines = tsv.read_text().splitlines() if tsv.exists() else []
    rates: dict[int, list[float]] = {kib: [] for kib in sizes}
    for line in lines:
        cols = line.split("\t")
        if len(cols) >= 8 and cols[0] == "repeat" and cols[2].isdigit() and int(cols[2]) // 1024 in rates:
            if int(cols[4]) < messages:
                raise SystemExit(f"bench: bench-raw delivered {cols[4]}/{messages}: {p.stderr.strip()[-300:]}")
            rates[int(cols[2]) // 1024].append(float(cols[7]))
    if any(not r for r in rates.values()):
        raise SystemExit(f"bench: bench-raw gave no runs (exit {p.returncode}): {p.stderr.strip()[-500:]}")
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500, help="messages per run (default 500)")
    parser.add_argument("--sessions", type=int, default=10, help="parallel SMTP sessions (default 10)")
    parser.add_argument("--sizes", default="4,64", help="payload sizes in KiB, comma-separated (default 4,64)")
    parser.add_argument("--rounds", type=int, default=3, help="filter/bare runs per size, alternated (default 3)")
    parser.add_argument("--instance", default="te1")
    parser.add_argument("--offset", type=int, default=34000)
    parser.add_argument("--raw-dir", type=Path, default=RAW_DIR, help=f"bench-raw (default {RAW_DIR})")
    parser.add_argument("--no-raw", action="store_true", help="skip the bare pipeline of bench-raw")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    if not 1 <= args.messages <= 5000:
        parser.error("--messages: between 1 and 5000")
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds: between 1 and 10")
    sizes = [int(s) for s in args.sizes.split(",")]

    raw = {} if args.no_raw else raw_ceiling(args.raw_dir, args.messages, args.sessions, sizes, args.rounds)
    load_before = os.getloadavg()
    # seconds of each run, by size and mode
    runs: dict[int, dict[str, list[float]]] = {kib: {"filter": [], "bare": []} for kib in sizes}
    # CPU seconds used by each daemon's container during the runs, by size and mode
    cpu: dict[int, dict[str, dict[str, float]]] = {
        kib: {mode: dict.fromkeys(DAEMONS, 0.0) for mode in ("filter", "bare")} for kib in sizes}
    with BenchInstance(args.instance, args.offset) as mail:
        imap = mail.imap()
        empty_inbox(mail)
        send_and_wait(mail, imap, 20, 4096, args.sessions)  # warm-up, untimed
        if "X-Spam-Status" not in last_header(imap):
            raise SystemExit("bench: the filter is on but the message has no X-Spam-Status header")
        for kib in sizes:
            for _ in range(args.rounds):
                for label, on in (("filter", True), ("bare", False)):
                    set_filter(mail, on)
                    empty_inbox(mail)
                    before = cpu_snapshot(mail)
                    runs[kib][label].append(send_and_wait(mail, imap, args.messages, kib * 1024, args.sessions))
                    after = cpu_snapshot(mail)
                    for daemon in DAEMONS:
                        cpu[kib][label][daemon] += after[daemon] - before[daemon]
                    if ("X-Spam-Status" in last_header(imap)) != on:
                        raise SystemExit(f"bench: {label} run: X-Spam-Status header {'missing' if on else 'present'}")
            set_filter(mail, True)
        imap.logout()

    print(f"End-to-end throughput, instance {args.instance} (mail {__version__}): smtp-source, "
          f"{args.sessions} sessions, {args.messages} messages per run, SMTP port 25 -> INBOX of one user;")
    print(f"median of {args.rounds} runs per mode, filter and bare runs alternated")
    print()
    print(f"{'payload':<8} {'with filter':>21} {'bare (no milter)':>21} {'ratio':>7}  target >= {TARGET_RATIO:.0%}")
    ok = True
    for kib, r in runs.items():
        secs = {label: statistics.median(times) for label, times in r.items()}
        rate = {label: args.messages / t for label, t in secs.items()}
        ratio = rate["filter"] / rate["bare"]
        ok &= ratio >= TARGET_RATIO
        print(f"{kib:>4} KiB {rate['filter']:>8.1f} msg/s {secs['filter']:>6.2f} s "
              f"{rate['bare']:>8.1f} msg/s {secs['bare']:>6.2f} s {ratio:>6.0%}  {mark(ratio >= TARGET_RATIO)}")
    print()
    print("every run, msg/s (filter | bare): " + "; ".join(
        f"{kib} KiB " + " ".join(f"{args.messages / t:.0f}" for t in r["filter"]) + " | "
        + " ".join(f"{args.messages / t:.0f}" for t in r["bare"]) for kib, r in runs.items()))
    print_cpu(cpu, args.messages * args.rounds)
    ratios = print_raw(raw, runs, args.messages) if raw else {}
    ok &= all(r >= RAW_TARGETS.get(mode, {}).get(kib, 0) for kib, modes in ratios.items() for mode, r in modes.items())
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nhost load average before the module runs {', '.join(f'{x:.1f}' for x in load_before)}, "
          f"at the end {load} ({os.cpu_count()} cores): figures of a shared host are noisy")
    if args.json:
        args.json.write_text(json.dumps({
            "messages": args.messages, "sessions": args.sessions, "rounds": args.rounds,
            "raw_msg_s": {str(k): v for k, v in raw.items()},
            "module_msg_s": {str(k): {m: [args.messages / t for t in ts] for m, ts in r.items()}
                             for k, r in runs.items()},
            "ratio_to_raw": {str(k): v for k, v in ratios.items()},
            "cpu_ms_per_message": {str(k): {m: {d: c / (args.messages * args.rounds) * 1000 for d, c in used.items()}
                                            for m, used in modes.items()} for k, modes in cpu.items()},
            "load": [load_before, os.getloadavg()],
        }, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0 if ok else 1


def print_raw(raw: dict[int, list[float]], runs: dict[int, dict[str, list[float]]], messages: int
              ) -> dict[int, dict[str, float]]:
    """Each mode's median msg/s as a ratio of the bare pipeline's median; the ratios by size and mode."""
    print()
    print("Ratio to the bare Postfix -> Dovecot pipeline (../shared/bench-raw, same invocation, end-to-end):")
    ratios: dict[int, dict[str, float]] = {}
    for kib, modes in runs.items():
        ceiling = statistics.median(raw[kib])
        ratios[kib] = {}
        line = f"{kib:>4} KiB bare pipeline {ceiling:7.1f} msg/s (runs {' '.join(f'{r:.0f}' for r in raw[kib])})"
        for mode, times in modes.items():
            ratio = messages / statistics.median(times) / ceiling
            ratios[kib][mode] = ratio
            target = RAW_TARGETS[mode][kib] if kib in RAW_TARGETS.get(mode, {}) else None
            verdict = f" (>= {target}x {mark(ratio >= target)})" if target else ""
            line += f"; {'filter on' if mode == 'filter' else 'filter off'} {ratio:.2f}x{verdict}"
        print(line)
    return ratios


def print_cpu(cpu: dict[int, dict[str, dict[str, float]]], messages: int) -> None:
    """CPU per message by container, and the ratio the CPU alone allows on this host.

    Both modes keep every core busy, so throughput is CPU per message in reverse: the
    filter's own CPU (rspamd, redis, clamav) bounds the filter/bare ratio from above.
    """
    print()
    print("CPU per message, ms (each container's cgroup, all runs of the mode):")
    print(f"{'payload':<8} {'mode':<7}" + "".join(f"{d:>9}" for d in DAEMONS) + f"{'total':>9}")
    for kib, modes in cpu.items():
        for mode, used in modes.items():
            print(f"{kib:>4} KiB {mode:<7}" + "".join(f"{used[d] / messages * 1000:>9.2f}" for d in DAEMONS)
                  + f"{sum(used.values()) / messages * 1000:>9.2f}")
    for kib, modes in cpu.items():
        bare = sum(modes["bare"].values())
        filtering = sum(modes["filter"][d] for d in FILTER_DAEMONS)
        print(f"{kib:>4} KiB: the filter ({', '.join(FILTER_DAEMONS)}) adds {filtering / messages * 1000:.2f} ms "
              f"to the {bare / messages * 1000:.2f} ms of the bare pipeline: at full CPU use the ratio "
              f"can be at most {bare / (bare + filtering):.0%}")


if __name__ == "__main__":
    sys.exit(main())
