"""CPU seconds one admin CLI call costs: `relay events list --help` and a real `relay events
list` against a relay on this machine (issue 19: every call cost ~1.3 s while
relay/cli/main.py imported the server stack; the target is at most 0.3 s).

    python benchmarks/cli_startup.py                 # 10 runs of each
    python benchmarks/cli_startup.py --runs 20 --baseline /tmp/old-checkout

``--baseline DIR`` also times a checkout of another commit (``git archive REV | tar -x -C
DIR``) with the same interpreter, interleaved with this one, so both see the same machine
load: on a shared machine compare the ratio, not the seconds. CPU is user + system of the
child process (``resource.getrusage(RUSAGE_CHILDREN)``), not wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relay.devtools.embedded_redis import EmbeddedRedis, free_port  # noqa: E402

TOKEN = "cli-startup-benchmark-token"  # noqa: S105 (a throwaway relay's token)


def cpu_of(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--baseline", type=Path, help="a checkout of another commit")
    options = parser.parse_args()
    trees = {"this checkout": ROOT}
    if options.baseline:
        trees["baseline"] = options.baseline.resolve()
    port = free_port()
    with EmbeddedRedis() as redis, tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env |= {"RELAY_REDIS_URL": redis.url, "RELAY_ADMIN_TOKEN": TOKEN, "COLUMNS": "80"}
        env |= {"RELAY_PORT": str(port), "RELAY_LOG_LEVEL": "WARNING", "RELAY_DATA_DIR": data}
        server = subprocess.Popen(
            [sys.executable, "-m", "relay.cli", "serve"], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            env["RELAY_URL"] = f"http://127.0.0.1:{port}"
            _wait_until_up(env)
            cases = {"events list --help": ["--help"], "events list": []}
            got: dict[tuple[str, str], list[float]] = {}
            for _ in range(options.runs):
                for case, extra in cases.items():
                    for name, tree in trees.items():
                        args = [sys.executable, "-m", "relay.cli", "events", "list", *extra]
                        got.setdefault((case, name), []).append(cpu_of(args, tree, env))
        finally:
            server.terminate()
            server.wait(timeout=20)
    print(f"CPU seconds per call (user + system), {options.runs} runs, median [min-max]:")
    for (case, name), seconds in got.items():
        print(f"  {case:<20} {name:<14} {statistics.median(seconds):.3f} "
              f"[{min(seconds):.3f}-{max(seconds):.3f}]")  # fmt: skip
    if options.baseline:
        for case in cases:
            ratio = statistics.median(got[(case, "baseline")]) / statistics.median(
                got[(case, "this checkout")]
            )
            print(f"  {case}: the baseline costs {ratio:.1f}x this checkout")


def _wait_until_up(env: dict[str, str]) -> None:
    import time

    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(env["RELAY_URL"] + "/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("relay serve did not start")


if __name__ == "__main__":
    main()
