"""Issue 16: list-addresses with 10,000 addresses through the CLI, the runner, the HTTPS API and the
Addresses page in chromium, in one run.

Starts a throw-away instance (`BenchInstance`, default wa1 on 127.0.0.1, ports +20000), adds
10,000 addresses straight into its state (one transaction through mailctl.addresses: the
bench measures listing them, not adding them), starts `mailctl serve` and prints medians of:

- `mailctl run list-addresses` (a new process each time: Python start included);
- the action in this process (`runner.run_action`): what the API runs for each request;
- `POST /api/actions/list-addresses` over HTTPS with a logged-in keep-alive client;
- the Addresses page in headless chromium (bench/ui_paint.py): first paint, the list's
  answer, the table drawn, and the browser's own share.

Targets (issue 16): the API adds < 50 ms to the action; the page is usable (first paint)
in < 1 s. Exits 1 when one is missed.

    .venv/bin/python bench/web_addresses.py [--addresses 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _instance import DOMAIN, HOST, MAILCTL, USER, BenchInstance  # noqa: E402
from ui_paint import median, page_load  # noqa: E402

from mailctl import runner  # noqa: E402
from mailctl.addresses import put_address  # noqa: E402
from mailctl.settings import Instance  # noqa: E402
from mailctl.state import Store  # noqa: E402

API_TARGET_MS = 50
PAINT_TARGET_MS = 1000


def seed(mail: BenchInstance, count: int) -> Instance:
    """`count` addresses of DOMAIN, each to the bench user; returns the instance."""
    instance = Instance(name=mail.name, state_root=mail.state_dir, bind=HOST, port_offset=mail.offset)
    store = Store(instance.db_path)
    with store.transaction():
        for i in range(count):
            put_address(store, f"bench{i:05d}", DOMAIN, [{"dtype": "user", "name": USER}],
                        description=f"bench address {i}")
    return instance


def timed(call, runs: int) -> float:
    """Median wall time of `call()` in ms."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def start_server(mail: BenchInstance) -> tuple[subprocess.Popen, str]:
    url = f"https://{HOST}:{mail.port(9443)}"
    log = open(mail.state_dir / "serve.log", "ab")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen([MAILCTL, "serve"], env=mail.env, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/api/session", verify=False, timeout=2)
            return server, url
        except httpx.TransportError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit(f"bench: mailctl serve did not answer on {url}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addresses", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--instance", default="wa1")
    parser.add_argument("--offset", type=int, default=20000)
    args = parser.parse_args()

    with BenchInstance(args.instance, args.offset) as mail:
        instance = seed(mail, args.addresses)
        listed = len(mail.run("list-addresses", {})["addresses"])
        print(f"instance {mail.name}: {listed} addresses listed ({args.addresses} added)")
        os.environ.update({k: v for k, v in mail.env.items() if k.startswith("MAIL_")})

        cli_ms = timed(lambda: mail.mailctl("run", "list-addresses"), args.runs)
        server, url = start_server(mail)
        try:
            password = mail.mailctl("admin-password").strip()
            with httpx.Client(base_url=url, verify=False, timeout=120) as client:
                r = client.post("/api/login", json={"username": "admin", "password": password})
                r.raise_for_status()
                client.headers["X-CSRF-Token"] = r.json()["csrf_token"]

                def api_call():
                    response = client.post("/api/actions/list-addresses", json={})
                    response.raise_for_status()
                    return json.loads(response.content)

                api_call()  # warm: first request loads the schemas
                # Alternate the action in this process and the API call, so that the load
                # of a shared host weighs on both alike.
                action_runs, api_runs = [], []
                for _ in range(args.runs):
                    action_runs.append(timed(lambda: runner.run_action(instance, "list-addresses", {}), 1))
                    api_runs.append(timed(api_call, 1))
                action_ms, api_ms = statistics.median(action_runs), statistics.median(api_runs)
            pages = page_load(url, password, "addresses", "list-addresses", runs=args.runs)
        finally:
            server.terminate()
            server.wait(15)

    first_paint, ready, page_api, ui = (median(pages, k) for k in ("first_paint", "ready", "api", "ui"))
    overhead = api_ms - action_ms
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nlist-addresses with {listed} addresses, median of {args.runs} runs (ms); host load {load}:")
    print(f"  mailctl run list-addresses (new process)   {cli_ms:8.0f}")
    print(f"  the action in-process (runner)             {action_ms:8.0f}")
    print(f"  POST /api/actions/list-addresses (HTTPS)   {api_ms:8.0f}   API adds {overhead:.0f}")
    print(f"  Addresses page: first paint                {first_paint:8.0f}")
    print(f"  Addresses page: list answered              {page_api:8.0f}")
    print(f"  Addresses page: table drawn                {ready:8.0f}   browser's share {ui:.0f}")
    api_ok = overhead < API_TARGET_MS
    paint_ok = first_paint is not None and first_paint < PAINT_TARGET_MS
    print(f"\n{'PASS' if api_ok else 'MISS'}  the API adds {overhead:.0f} ms (target < {API_TARGET_MS})")
    print(f"{'PASS' if paint_ok else 'MISS'}  first paint {first_paint:.0f} ms (target < {PAINT_TARGET_MS}); "
          f"the table of {listed} rows is drawn at {ready:.0f} ms")
    return 0 if api_ok and paint_ok else 1


if __name__ == "__main__":
    sys.exit(main())
