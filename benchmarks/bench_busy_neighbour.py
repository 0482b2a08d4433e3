"""Thread policy under a concurrent load (issue 17, row 14).

Runs ``speechlm continue`` on the bundled sample four ways and prints the wall times and the
ratio busy / idle:

    policy   the CLI as shipped: OMP_WAIT_POLICY=PASSIVE is set before torch is imported
    default  OpenMP's default policy (torch imported first, so the CLI cannot set it; what
             every run did before the fix)

each on an idle machine and next to a *busy neighbour*: one pure-Python spinning process per
core, the "another engineer's job on the same 2 cores" of the issue. A policy that does not
collapse keeps busy / idle near (cores + 1) / cores or below; the default policy's spinning
workers made it 20x.

    .venv/bin/python benchmarks/bench_busy_neighbour.py [--seconds 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples/flite_slt_arctic_a0004.wav"


POLICIES = {"passive": "PASSIVE (the CLI now)", "passive1": "PASSIVE + --threads 1",
            "spin10k": "default policy, GOMP_SPINCOUNT=10000",
            "default": "OpenMP default (before)"}
ENV = {"spin10k": {"GOMP_SPINCOUNT": "10000"}}  # what a policy adds to the environment


def _spin(stop) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def _command(policy: str, out: Path, seconds: float) -> list[str]:
    argv = ["continue", str(SAMPLE), "-o", str(out), "--seconds", str(seconds), "--seed", "0",
            "--force", "-q"]
    if policy == "passive":
        return [sys.executable, "-m", "speechlm", *argv]
    if policy == "passive1":
        return [sys.executable, "-m", "speechlm", "--threads", "1", *argv]
    # torch first: libgomp reads its wait policy when torch loads, before main() could set it
    return [sys.executable, "-c", "import sys, torch; from speechlm.cli import main; "
            f"sys.exit(main({argv!r}))"]


def _time(cmd: list[str], extra: dict[str, str] | None = None) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(extra or {})
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="continuation length")
    ap.add_argument("--repeats", type=int, default=1, help="runs per cell (median)")
    ap.add_argument("--neighbours", type=int, default=os.cpu_count() or 1,
                    help="spinning processes of the busy neighbour")
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp()) / "o.wav"
    _time(_command("passive", out, args.seconds))  # warm the page cache and the bytecode
    rows = {}
    for busy in (False, True):
        stop = mp.Event()
        procs = [mp.Process(target=_spin, args=(stop,), daemon=True)
                 for _ in range(args.neighbours if busy else 0)]
        for p in procs:
            p.start()
        try:
            for policy in POLICIES:
                times = [_time(_command(policy, out, args.seconds), ENV.get(policy))
                         for _ in range(args.repeats)]
                rows[(policy, busy)] = statistics.median(times)
        finally:
            stop.set()
            for p in procs:
                p.join()
    print(f"continue --seconds {args.seconds:g} on {os.cpu_count()} cores, "
          f"{args.neighbours} spinning neighbour processes, median of {args.repeats}")
    print("| thread policy | idle (s) | busy neighbour (s) | busy / idle |")
    print("|---|---:|---:|---:|")
    for policy, name in POLICIES.items():
        idle, busy = rows[(policy, False)], rows[(policy, True)]
        print(f"| {name} | {idle:.1f} | {busy:.1f} | {busy / idle:.2f} |")
    ratio = rows[("passive", False)] / rows[("default", False)]
    print(f"idle time, PASSIVE / default: {ratio:.2f}")


if __name__ == "__main__":
    main()
