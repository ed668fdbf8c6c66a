"""End-to-end SMTP throughput with the filter, without it, and against the bare pipeline.

    .venv/bin/python bench/throughput.py [--messages 500] [--sessions 10] [--sizes 4,64] [--rounds 3]
        [--distinct 1000] [--raw-dir ../shared/bench-raw | --no-raw] [--json FILE]

First, in the same invocation, the bare Postfix -> Dovecot LMTP pipeline of
`../shared/bench-raw` (stock daemons, minimal configuration; its README): `run-baseline.sh
build repeat SESSIONS BYTES ROUNDS ... cleanup` with M=--messages, its end-to-end msg/s
(first connection to the newest delivered file) per size, median of its runs. Every mode of
the module is then printed as a ratio of that ceiling too, against the targets of issue 14
(filter off >= 0.7x at 4 and 64 KiB; filter on >= 0.5x at 4 KiB, >= 0.35x at 64 KiB; the
`-N` load >= 0.6x, filter off). The ceiling's CPU per message (its containers' cgroups,
as run-baseline.sh prints them) is printed beside the module's. The ceiling's containers
have fixed names (bench-postfix, bench-dovecot, port 2525): the bench stops if they
already exist (someone else's run).

On a throw-away instance (te1, 127.0.0.1, ports +24000, its own temporary state dir, one
user in example.org), for each message size (KiB of payload):

- with filter: Postfix's `smtp-source` sends the messages over `--sessions` parallel SMTP
  sessions to port 25; rspamd (antispam, ClamAV) scans each one through the milter;
- bare: the same, with the milter switched off in the running postfix
  (`postconf -e smtpd_milters= non_smtpd_milters=` + `postfix reload`; the rendered
  configuration is put back afterwards with the container's `reload`).

- `-N` (`--distinct N`, default 1000, 0 to skip): N messages of the first size, each to
  its own recipient (smtp-source -N: 1benchuser@example.org, 2benchuser@...; N addresses
  written into the state in one transaction, each to its own mailbox, created by its first
  delivery; the mailboxes are removed before each run), with and without the filter; the
  bare pipeline's `SRC_OPTS=-N` run is its ceiling.

A run lasts from the first SMTP connection until the user's mailbox holds every message
(its files in the vmail volume, read from the host every 20 ms, or every 100 ms the -N
mailboxes: polling over IMAP or `podman exec` would bill dovecot's container for the
bench's own work); throughput = messages / that time. The INBOX is emptied
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _instance import DOMAIN, HOST, ROOT, USER, BenchInstance  # noqa: E402

from mailctl import __version__  # noqa: E402
from mailctl.addresses import put_address  # noqa: E402
from mailctl.settings import Instance  # noqa: E402
from mailctl.stack import DAEMONS, RELOAD_COMMAND  # noqa: E402
from mailctl.state import Store  # noqa: E402

SMTP_SOURCE = "/usr/sbin/smtp-source"
TARGET_RATIO = 0.80
FILTER_DAEMONS = ("rspamd", "redis", "clamav")  # the work the milter adds to each message
RUN_TIMEOUT = 180.0
RAW_DIR = Path(os.environ.get("MAIL_BENCH_RAW", ROOT.parent / "shared" / "bench-raw"))
DISTINCT = "-N"  # the load key of the distinct-recipients runs (the sizes' keys are their KiB)
# Issue 14: minimum ratio to the bare pipeline, by mode and load (payload KiB, or -N).
RAW_TARGETS = {"bare": {4: 0.7, 64: 0.7, DISTINCT: 0.6}, "filter": {4: 0.5, 64: 0.35}}
RAW_CPU = re.compile(r"cpu_s\(postfix dovecot host_total_busy\): ([\d.]+) ([\d.]+)")


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def last_header(imap: imaplib.IMAP4) -> email.message.Message:
    imap.select("INBOX", readonly=True)
    _, data = imap.fetch(b"*", "(BODY.PEEK[HEADER])")
    imap.close()
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


def vmail_dir(mail: BenchInstance) -> Path:
    """The host directory of the instance's vmail volume (read from the host: polling it
    through `podman exec` would bill the dovecot container for the bench's own work)."""
    out = subprocess.run(["podman", "volume", "inspect", f"{mail.name}-vmail", "-f", "{{.Mountpoint}}"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return Path(out)


def delivered(vmail: Path, homes: str) -> int:
    """Messages in the Maildirs (new and cur) of the mailboxes whose names match `homes`."""
    count = 0
    for home in vmail.glob(homes):
        for sub in ("new", "cur"):
            try:
                count += len(os.listdir(home / "Maildir" / sub))
            except FileNotFoundError:
                pass  # not delivered to yet
    return count


def add_distinct_recipients(mail: BenchInstance, count: int) -> None:
    """Addresses 1benchuser@example.org ... COUNT..., each to its own mailbox (one state
    transaction; postfix reads them at query time)."""
    instance = Instance(name=mail.name, state_root=mail.state_dir, bind=HOST, port_offset=mail.offset)
    store = Store(instance.db_path)
    with store.transaction():
        for i in range(1, count + 1):
            put_address(store, f"{i}{USER}", DOMAIN, [{"dtype": "user", "name": f"{i}{USER}"}],
                        description="throughput bench -N")
    store.close()


def send_and_wait(mail: BenchInstance, vmail: Path, count: int, size: int, sessions: int,
                  distinct: bool = False) -> float:
    """Seconds from the first SMTP connection until `count` new messages are delivered: in
    the bench user's mailbox, or with `distinct`, one to each -N recipient's mailbox."""
    homes = f"[0-9]*{USER}" if distinct else USER
    before = delivered(vmail, homes)
    cmd = [SMTP_SOURCE, *(["-N"] if distinct else []), "-s", str(sessions), "-m", str(count), "-l", str(size),
           "-M", "client.example.net", "-f", "sender@example.net", "-t", f"{USER}@{DOMAIN}",
           "-S", "throughput bench", f"{HOST}:{mail.port(25)}"]
    start = time.monotonic()
    source = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        arrived = delivered(vmail, homes) - before
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
        time.sleep(0.1 if distinct else 0.02)  # 1000 directories, or one
    source.wait()
    if source.returncode != 0:
        raise SystemExit(f"bench: smtp-source failed: {source.stderr.read().strip()}")
    return now - start


def run_raw(script: Path, steps: list[str], messages: int, src_opts: str) -> list[tuple[int, float, float, float]]:
    """One run-baseline.sh invocation (then its cleanup); per run: payload bytes, end-to-end
    msg/s, CPU seconds of its postfix and of its dovecot container."""
    with tempfile.TemporaryDirectory(prefix="bench-raw-") as res:
        env = {**os.environ, "M": str(messages), "RES": res, "SRC_OPTS": src_opts}
        p = subprocess.run(["bash", str(script), *steps, "cleanup"], env=env, capture_output=True, text=True,
                           check=False, timeout=3600)
        tsv, cpu = Path(res, "runs.tsv"), Path(res, "cpu_split.txt")
        lines = tsv.read_text().splitlines() if tsv.exists() else []
        cpus = [RAW_CPU.search(line) for line in (cpu.read_text().splitlines() if cpu.exists() else [])]
    rows = [cols for cols in (line.split("\t") for line in lines)
            if len(cols) >= 8 and cols[0].startswith("repeat") and cols[2].isdigit()]
    if not rows or len(rows) != len(cpus) or not all(cpus):
        raise SystemExit(f"bench: bench-raw gave no runs (exit {p.returncode}): {p.stderr.strip()[-500:]}")
    for cols in rows:
        if int(cols[4]) < messages:
            raise SystemExit(f"bench: bench-raw delivered {cols[4]}/{messages}: {p.stderr.strip()[-300:]}")
    return [(int(cols[2]), float(cols[7]), float(c[1]), float(c[2])) for cols, c in zip(rows, cpus, strict=True)]


def raw_ceiling(raw_dir: Path, messages: int, sessions: int, sizes: list[int], rounds: int, distinct: int
                ) -> dict[int | str, list[tuple[float, float, float]]]:
    """Each run of ../shared/bench-raw by load (payload KiB, or DISTINCT): end-to-end msg/s,
    postfix and dovecot CPU seconds."""
    script = raw_dir / "run-baseline.sh"
    if not script.exists():
        raise SystemExit(f"bench: no {script} (--raw-dir, MAIL_BENCH_RAW, or --no-raw)")
    busy = subprocess.run(["podman", "container", "exists", "bench-postfix"], check=False).returncode == 0
    if busy:
        raise SystemExit("bench: a bench-raw run is under way (container bench-postfix exists): try later")
    steps = ["build"]
    for kib in sizes:
        steps += ["repeat", str(sessions), str(kib * 1024), str(rounds)]
    raw: dict[int | str, list[tuple[float, float, float]]] = {kib: [] for kib in sizes}
    for size, rate, postfix, dovecot in run_raw(script, steps, messages, ""):
        raw[size // 1024].append((rate, postfix, dovecot))
    if distinct:
        runs = run_raw(script, ["repeat", str(sessions), str(sizes[0] * 1024), str(rounds)], distinct, "-N")
        raw[DISTINCT] = [(rate, postfix, dovecot) for _, rate, postfix, dovecot in runs]
    return raw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500, help="messages per run (default 500)")
    parser.add_argument("--sessions", type=int, default=10, help="parallel SMTP sessions (default 10)")
    parser.add_argument("--sizes", default="4,64", help="payload sizes in KiB, comma-separated (default 4,64)")
    parser.add_argument("--rounds", type=int, default=3, help="filter/bare runs per size, alternated (default 3)")
    parser.add_argument("--distinct", type=int, default=1000,
                        help="-N runs: messages to as many distinct recipients, first size (default 1000, 0: none)")
    parser.add_argument("--instance", default="te1")
    parser.add_argument("--offset", type=int, default=24000)
    parser.add_argument("--raw-dir", type=Path, default=RAW_DIR, help=f"bench-raw (default {RAW_DIR})")
    parser.add_argument("--no-raw", action="store_true", help="skip the bare pipeline of bench-raw")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    if not 1 <= args.messages <= 5000:
        parser.error("--messages: between 1 and 5000")
    if not 0 <= args.distinct <= 5000:
        parser.error("--distinct: between 0 and 5000")
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds: between 1 and 10")
    sizes = [int(s) for s in args.sizes.split(",")]
    loads: list[int | str] = [*sizes, *([DISTINCT] if args.distinct else [])]
    count = {load: args.distinct if load == DISTINCT else args.messages for load in loads}

    raw = {} if args.no_raw else raw_ceiling(args.raw_dir, args.messages, args.sessions, sizes, args.rounds,
                                             args.distinct)
    load_before = os.getloadavg()
    # seconds of each run, by load and mode
    runs: dict[int | str, dict[str, list[float]]] = {load: {"filter": [], "bare": []} for load in loads}
    # CPU seconds used by each daemon's container during the runs, by load and mode
    cpu: dict[int | str, dict[str, dict[str, float]]] = {
        load: {mode: dict.fromkeys(DAEMONS, 0.0) for mode in ("filter", "bare")} for load in loads}
    with BenchInstance(args.instance, args.offset) as mail:
        imap = mail.imap()
        vmail = vmail_dir(mail)
        empty_inbox(mail)
        send_and_wait(mail, vmail, 20, 4096, args.sessions)  # warm-up, untimed
        if "X-Spam-Status" not in last_header(imap):
            raise SystemExit("bench: the filter is on but the message has no X-Spam-Status header")
        if args.distinct:
            add_distinct_recipients(mail, args.distinct)
        for load in loads:
            distinct = load == DISTINCT
            size = (sizes[0] if distinct else load) * 1024
            for _ in range(args.rounds):
                for label, on in (("filter", True), ("bare", False)):
                    set_filter(mail, on)
                    if distinct:  # every mailbox is made again by its first delivery, as in bench-raw
                        mail.exec("dovecot", "sh", "-c", f"rm -rf /var/lib/vmail/[0-9]*{USER}")
                    else:
                        empty_inbox(mail)
                    before = cpu_snapshot(mail)
                    runs[load][label].append(send_and_wait(mail, vmail, count[load], size, args.sessions,
                                                           distinct))
                    after = cpu_snapshot(mail)
                    for daemon in DAEMONS:
                        cpu[load][label][daemon] += after[daemon] - before[daemon]
                    if not distinct and ("X-Spam-Status" in last_header(imap)) != on:
                        raise SystemExit(f"bench: {label} run: X-Spam-Status header {'missing' if on else 'present'}")
            set_filter(mail, True)
        imap.logout()

    print(f"End-to-end throughput, instance {args.instance} (mail {__version__}): smtp-source, "
          f"{args.sessions} sessions, {args.messages} messages per run, SMTP port 25 -> INBOX of one user"
          + (f"; -N: {args.distinct} messages to as many recipients ({sizes[0]} KiB)" if args.distinct else "") + ";")
    print(f"median of {args.rounds} runs per mode, filter and bare runs alternated")
    print()
    print(f"{'load':<8} {'with filter':>21} {'bare (no milter)':>21} {'ratio':>7}  target >= {TARGET_RATIO:.0%}")
    ok = True
    for load, r in runs.items():
        secs = {label: statistics.median(times) for label, times in r.items()}
        rate = {label: count[load] / t for label, t in secs.items()}
        ratio = rate["filter"] / rate["bare"]
        ok &= ratio >= TARGET_RATIO
        print(f"{load_name(load):<8} {rate['filter']:>8.1f} msg/s {secs['filter']:>6.2f} s "
              f"{rate['bare']:>8.1f} msg/s {secs['bare']:>6.2f} s {ratio:>6.0%}  {mark(ratio >= TARGET_RATIO)}")
    print()
    print("every run, msg/s (filter | bare): " + "; ".join(
        f"{load_name(load)} " + " ".join(f"{count[load] / t:.0f}" for t in r["filter"]) + " | "
        + " ".join(f"{count[load] / t:.0f}" for t in r["bare"]) for load, r in runs.items()))
    print_cpu(cpu, {load: n * args.rounds for load, n in count.items()}, raw)
    ratios = print_raw(raw, runs, count) if raw else {}
    ok &= all(r >= RAW_TARGETS[mode].get(load, 0) for load, modes in ratios.items() for mode, r in modes.items())
    load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nhost load average before the module runs {', '.join(f'{x:.1f}' for x in load_before)}, "
          f"at the end {load_avg} ({os.cpu_count()} cores): figures of a shared host are noisy")
    if args.json:
        args.json.write_text(json.dumps({
            "messages": args.messages, "distinct": args.distinct, "sessions": args.sessions, "rounds": args.rounds,
            "raw_msg_s": {str(k): [run[0] for run in v] for k, v in raw.items()},
            "raw_cpu_ms_per_message": {str(k): raw_cpu_ms(v, count[k]) for k, v in raw.items()},
            "module_msg_s": {str(k): {m: [count[k] / t for t in ts] for m, ts in r.items()}
                             for k, r in runs.items()},
            "ratio_to_raw": {str(k): v for k, v in ratios.items()},
            "cpu_ms_per_message": {str(k): {m: {d: c / (count[k] * args.rounds) * 1000 for d, c in used.items()}
                                            for m, used in modes.items()} for k, modes in cpu.items()},
            "load": [load_before, os.getloadavg()],
        }, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0 if ok else 1


def load_name(load: int | str) -> str:
    return f"{load} KiB" if load != DISTINCT else DISTINCT


def raw_cpu_ms(runs: list[tuple[float, float, float]], messages: int) -> dict[str, float]:
    """The bare pipeline's CPU per message, ms, by container (run-baseline.sh gives 0.1 s steps)."""
    return {"postfix": sum(r[1] for r in runs) / (messages * len(runs)) * 1000,
            "dovecot": sum(r[2] for r in runs) / (messages * len(runs)) * 1000}


def print_raw(raw: dict[int | str, list[tuple[float, float, float]]], runs: dict[int | str, dict[str, list[float]]],
              count: dict[int | str, int]) -> dict[int | str, dict[str, float]]:
    """Each mode's median msg/s as a ratio of the bare pipeline's median; the ratios by load and mode."""
    print()
    print("Ratio to the bare Postfix -> Dovecot pipeline (../shared/bench-raw, same invocation, end-to-end):")
    ratios: dict[int | str, dict[str, float]] = {}
    for load, modes in runs.items():
        rates = [run[0] for run in raw[load]]
        ceiling = statistics.median(rates)
        ratios[load] = {}
        line = f"{load_name(load):<8} bare pipeline {ceiling:7.1f} msg/s (runs {' '.join(f'{r:.0f}' for r in rates)})"
        for mode, times in modes.items():
            ratio = count[load] / statistics.median(times) / ceiling
            ratios[load][mode] = ratio
            target = RAW_TARGETS[mode].get(load)
            verdict = f" (>= {target}x {mark(ratio >= target)})" if target else ""
            line += f"; {'filter on' if mode == 'filter' else 'filter off'} {ratio:.2f}x{verdict}"
        print(line)
    return ratios


def print_cpu(cpu: dict[int | str, dict[str, dict[str, float]]], messages: dict[int | str, int],
              raw: dict[int | str, list[tuple[float, float, float]]]) -> None:
    """CPU per message by container, and the ratio the CPU alone allows on this host.

    Both modes keep every core busy, so throughput is CPU per message in reverse: the
    filter's own CPU (rspamd, redis, clamav) bounds the filter/bare ratio from above.
    """
    print()
    print("CPU per message, ms (each container's cgroup, all runs of the mode; 'raw': the bare pipeline's):")
    print(f"{'load':<8} {'mode':<7}" + "".join(f"{d:>9}" for d in DAEMONS) + f"{'total':>9}")
    for load, modes in cpu.items():
        for mode, used in modes.items():
            per_message = {d: used[d] / messages[load] * 1000 for d in DAEMONS}
            print(f"{load_name(load):<8} {mode:<7}" + "".join(f"{per_message[d]:>9.2f}" for d in DAEMONS)
                  + f"{sum(per_message.values()):>9.2f}")
        if load in raw:
            per = raw_cpu_ms(raw[load], messages[load] // len(raw[load]))
            print(f"{load_name(load):<8} {'raw':<7}" + "".join(f"{per[d]:>9.2f}" if d in per else f"{'':>9}"
                                                              for d in DAEMONS) + f"{sum(per.values()):>9.2f}")
    for load, modes in cpu.items():
        bare = sum(modes["bare"].values())
        filtering = sum(modes["filter"][d] for d in FILTER_DAEMONS)
        print(f"{load_name(load)}: the filter ({', '.join(FILTER_DAEMONS)}) adds "
              f"{filtering / messages[load] * 1000:.2f} ms to the {bare / messages[load] * 1000:.2f} ms of the bare "
              f"pipeline: at full CPU use the ratio can be at most {bare / (bare + filtering):.0%}")


if __name__ == "__main__":
    sys.exit(main())
