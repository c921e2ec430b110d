"""`make chaos`: each fault injected for real, 20 runs each, then `reconcile_storage --fix`
and a look at what is left: orphans, dangling rows, lost videos, stuck jobs, stale multipart
uploads. All must be zero (exit 1 otherwise).

python -m benchmarks.chaos [--runs 20] [--quick] [--only "provider 429,kill -9"] [--seed N]

Database: CHAOS_DATABASE_URL (PostgreSQL; create your own, e.g. `createdb -h 127.0.0.1 -U
postgres cs_chaos`), else a SQLite file in the temp directory. CHAOS_LOG_LEVEL=WARNING shows
the application's logs. See benchmarks/chaos_faults.py for what each fault does.
"""

import argparse
import os
import platform
import random
import sys
import time
from datetime import UTC, datetime

from benchmarks.chaos_world import RunResult, World

COLUMNS = ("orphans", "dangling", "lost", "stuck", "stale_multipart")
HEADER = ("| fault | runs | orphans | dangling rows | lost videos | stuck jobs | stale multipart "
          "uploads | outcomes | swept by the fix | seconds |")  # fmt: skip


def one_run(world: World, fault, rng: random.Random) -> RunResult:
    world.reset()
    job_ids = fault.run(world, rng)
    world.settle(job_ids)
    result = world.measure(job_ids)
    result.notes = world.notes + result.notes
    if world.findings or world.crashes:
        result.notes += world.findings + world.crashes
        result.stuck += len(world.crashes)
    world.crashes.clear()
    return result


def run_fault(world: World, fault, runs: int, rng: random.Random) -> tuple[dict, float]:
    started = time.monotonic()
    totals = {column: 0 for column in COLUMNS}
    totals.update(outcomes={}, swept=0, findings=0)
    if hasattr(fault.run, "setup"):
        fault.run.setup(world)
    try:
        for number in range(1, runs + 1):
            result = one_run(world, fault, rng)
            for column in COLUMNS:
                totals[column] += getattr(result, column)
            for state, count in result.outcomes.items():
                totals["outcomes"][state] = totals["outcomes"].get(state, 0) + count
            totals["swept"] += result.swept
            totals["findings"] += len(world.findings)
            flag = "PROBLEM " if result.problems or world.findings else ""
            notes = "; ".join(" ".join(note.split()) for note in result.notes)
            print(f"  {fault.name} #{number}: {flag}{result.outcomes} {notes}", file=sys.stderr,
                  flush=True)  # fmt: skip
    finally:
        if hasattr(fault.run, "teardown"):
            fault.run.teardown(world)
    return totals, time.monotonic() - started


def row(name: str, runs: int, totals: dict, seconds: float) -> str:
    outcomes = ", ".join(f"{state} {count}" for state, count in sorted(totals["outcomes"].items()))
    cells = [name, runs, *(totals[column] for column in COLUMNS), outcomes, totals["swept"],
             f"{seconds:.0f}"]  # fmt: skip
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each fault")
    parser.add_argument("--quick", action="store_true", help="3 runs of each fault")
    parser.add_argument("--only", default="", help="comma-separated fault names (prefixes)")
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    world = World()
    try:
        from benchmarks.chaos_faults import FAULTS
        from benchmarks.servers import big_mp4

        world.big_video, world.medium_video = big_mp4(32), big_mp4(4)
        chosen = [name.strip() for name in args.only.split(",") if name.strip()]
        faults = [f for f in FAULTS if not chosen or any(f.name.startswith(c) for c in chosen)]
        rng = random.Random(args.seed)
        started = datetime.now(UTC)
        lines, failed = [], False
        for fault in faults:
            totals, seconds = run_fault(world, fault, runs, rng)
            lines.append(row(fault.name, runs, totals, seconds))
            failed |= any(totals[column] for column in COLUMNS) or totals["findings"] > 0
            print(lines[-1], file=sys.stderr, flush=True)
    finally:
        world.close()
    print(f"Content Studio chaos, {started:%Y-%m-%d %H:%M} UTC, {runs} runs per fault, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{world.database_label}, moto S3 server, fake HeyGen")  # fmt: skip
    print(HEADER)
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    print("\n".join(lines))
    print("all zero" if not failed else "PROBLEMS: see the nonzero columns above", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
