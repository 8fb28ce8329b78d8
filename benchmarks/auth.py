"""How fast one client can guess tokens, and what checking a token costs per request.

    python benchmarks/auth.py                       # about 20 s
    python benchmarks/auth.py --code /tmp/base      # the same against another checkout

Starts an embedded Redis and one ``relay serve`` (``--code``: the directory whose ``relay``
package to run; default this checkout), then:

1. guessing: one client sends ``GET /api/sources`` with a different wrong bearer token, back
   to back, for ``--seconds``; prints requests/s, and how many guesses per second the relay
   actually looked at (answered 401) rather than refused unheard (429);
2. auth cost: ``--requests`` sequential ``GET /api/sources`` with the bootstrap admin token
   and with an API token (read from Redis on every request), p50 and p99 in ms. A relay
   without API tokens prints only the first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _procs import stop_on_sigterm

from relay.devtools.embedded_redis import EmbeddedRedis, free_port
from relay.devtools.processes import ProcessGroup, relay_command, relay_env

TOKEN = "bench-admin-token"  # noqa: S105 - a throwaway relay on loopback


def guessing(client: httpx.Client, seconds: float) -> None:
    counts: dict[int, int] = {}
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < seconds:
        r = client.get("/api/sources", headers={"authorization": f"Bearer guess-{n}"})
        counts[r.status_code] = counts.get(r.status_code, 0) + 1
        n += 1
    took = time.monotonic() - started
    print(f"guessing for {took:.1f} s: {n / took:,.0f} requests/s; answers {counts}")
    print(f"  guesses looked at (401): {counts.get(401, 0) / took:,.1f}/s")


def latency(client: httpx.Client, secret: str, requests: int) -> str:
    headers = {"authorization": f"Bearer {secret}"}
    took = []
    for _ in range(requests):
        start = time.perf_counter()
        client.get("/api/sources", headers=headers).raise_for_status()
        took.append((time.perf_counter() - start) * 1000)
    took.sort()
    p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
    return f"p50 {statistics.median(took):.2f} ms, p99 {p99:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--code", type=Path, default=None)
    args = parser.parse_args()
    stop_on_sigterm()
    port = free_port()
    with EmbeddedRedis() as redis, tempfile.TemporaryDirectory() as logs:
        env = relay_env(redis.url, TOKEN, port, "WARNING")
        if args.code:
            env["PYTHONPATH"] = str(args.code.resolve())
        with ProcessGroup(Path(logs), "auth") as procs:
            procs.spawn("serve", relay_command("serve"), {**env, "PWD": os.getcwd()})
            base = f"http://127.0.0.1:{port}"
            procs.wait_http("serve", f"{base}/healthz")
            with httpx.Client(base_url=base, trust_env=False, timeout=10) as client:
                auth = {"authorization": f"Bearer {TOKEN}"}
                client.put("/api/sources/bench", json={}, headers=auth).raise_for_status()
                made = client.post("/api/tokens", headers=auth,
                                   json={"name": "bench", "role": "viewer"})  # fmt: skip
                print(f"bootstrap token: {latency(client, TOKEN, args.requests)}")
                if made.status_code == 201:
                    secret = made.json()["token"]
                    print(f"API token:       {latency(client, secret, args.requests)}")
                guessing(client, args.seconds)


if __name__ == "__main__":
    main()
