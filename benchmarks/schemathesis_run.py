"""The big schemathesis run: every route fuzzed against real processes, 5xx counted.

    python benchmarks/schemathesis_run.py [--examples 800] [--seed 1] [--workers 2]

Starts redis-server, ``relay serve`` and ``relay worker`` on 127.0.0.1 with an admin token,
seeds a source and a subscription, runs ``schemathesis run`` over the OpenAPI document with
that token (``--checks not_a_server_error``, a HAR report), then prints how many requests
were made and how many answered >= 500, by route, and how many ``api.error`` lines the
relay logged. Exits non-zero if any answer was a 5xx.

Nothing leaves the machine: the whole run happens in a new network namespace with only
loopback (``unshare -n``, or ``unshare -rn`` without root), because the fuzzer's
subscriptions point at arbitrary hosts and the relay would deliver to them. Without
``unshare`` the script refuses to run.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from relay.devtools.embedded_redis import EmbeddedRedis, free_port
from relay.devtools.processes import ProcessGroup, relay_command, relay_env

_INSIDE = "RELAY_FUZZ_NETNS"
ROOT = Path(__file__).resolve().parents[1]


def isolate() -> None:
    """Run this script again inside a namespace with only loopback, then exit with it."""
    if os.environ.get(_INSIDE) == "1":
        return
    unshare = shutil.which("unshare")
    if unshare is None:
        sys.exit("unshare(1) is needed: the fuzzer's subscriptions must not reach the network")
    flags = "-n" if os.geteuid() == 0 else "-rn"
    # Loopback starts down in a new namespace; python brings it up if ip(8) is missing.
    up = "ip link set lo up 2>/dev/null || true"
    cmd = [unshare, flags, "sh", "-c", f'{up}; exec "$0" "$@"', sys.executable, *sys.argv]
    env = {**os.environ, _INSIDE: "1"}
    sys.exit(subprocess.call(cmd, env=env))


def check_offline() -> None:
    with httpx.Client(trust_env=False, timeout=2) as client:
        try:
            client.get("http://1.1.1.1/")
        except httpx.TransportError:
            return
    sys.exit("the network is reachable from here; refusing to fuzz")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=800, help="per operation")
    parser.add_argument("--seed", type=int, default=1)
    # One: with several, hypothesis' lambda descriptions hit a CPython 3.11 AST race.
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    isolate()
    check_offline()

    work = Path(tempfile.mkdtemp(prefix="relay-fuzz-"))
    token = "fuzz_" + secrets.token_urlsafe(18)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    auth = {"authorization": f"Bearer {token}"}
    with EmbeddedRedis(work / "redis") as redis, ProcessGroup(work, "relay") as group:
        env = relay_env(redis.url, token, port, log_level="INFO")
        # This checkout's code, whatever checkout the virtualenv was installed from.
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        group.spawn("api", relay_command("serve"), env)
        group.spawn("worker", relay_command("worker"), env)
        group.wait_http("api", f"{base}/readyz")
        with httpx.Client(base_url=base, headers=auth, trust_env=False) as client:
            client.put("/api/sources/github", json={}).raise_for_status()
            client.post(
                "/api/subscriptions", json={"url": "http://127.0.0.1:9/", "sources": ["github"]}
            ).raise_for_status()
        started = time.monotonic()
        cli = Path(sys.executable).parent / "schemathesis"
        command = [
            str(cli), "run", f"{base}/openapi.json",
            "--header", f"Authorization: Bearer {token}",
            "--checks", "not_a_server_error",
            "--max-examples", str(args.examples),
            "--seed", str(args.seed),
            "--workers", str(args.workers),
            "--suppress-health-check", "all",
            "--report", "har", "--report-dir", str(work / "report"),
        ]  # fmt: skip
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        took = time.monotonic() - started
        errors = [
            line for line in group.log_text("api").splitlines() if '"event":"api.error"' in line
        ]
    entries = [
        entry
        for har in (work / "report").glob("har-*.json")
        for entry in json.loads(har.read_text())["log"]["entries"]
    ]
    statuses = collections.Counter(e["response"]["status"] // 100 for e in entries)
    failing = collections.Counter(
        f"{e['request']['method']} {httpx.URL(e['request']['url']).path}"
        for e in entries
        if e["response"]["status"] >= 500
    )
    print(f"schemathesis {args.examples} examples per operation, seed {args.seed}: "
          f"{len(entries)} requests in {took:.0f} s, "
          + ", ".join(f"{k}xx {v}" for k, v in sorted(statuses.items())))  # fmt: skip
    print(f"responses >= 500: {sum(failing.values())}; api.error log lines: {len(errors)}")
    for route, count in failing.most_common():
        print(f"  {count:6d}  {route}")
    causes = collections.Counter(
        f"{x['exc_type']}: {x['exc_value'][:300]}"
        for line in errors
        for x in json.loads(line).get("exception", [])[-1:]
    )
    for cause, count in causes.most_common(10):
        print(f"  {count:6d}  {cause}")
    if run.returncode != 0:
        # Its own account: failures with a curl line to reproduce, runtime errors.
        print(run.stdout[-6000:])
    if failing:
        print(f"logs and the HAR report kept in {work}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
