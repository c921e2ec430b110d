"""`make chaos`: each fault injected for real, 20 runs each, then `reconcile_storage --fix`
and a look at what is left: orphans, dangling rows, lost videos, stuck jobs, stale multipart
uploads. All must be zero, every run must pay exactly one render per requested video, and the
fake provider must never see more renders in progress than VIDEO_MAX_CONCURRENT_RENDERS (exit
1 otherwise). Where a worker is killed, the table shows how long its jobs waited for their
next progress (target: the dead holder's lease plus one engine tick).

python -m benchmarks.chaos [--runs 20] [--quick] [--only "provider 429,kill -9"] [--seed N]
                           [--runs-of "provider=5,storm=1"]

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

from benchmarks.chaos_world import ENGINE_TICK, RunResult, World

COLUMNS = ("orphans", "dangling", "lost", "stuck", "stale_multipart")
HEADER = ("| fault | runs | orphans | dangling rows | lost videos | stuck jobs | stale multipart "
          "uploads | renders per requested video | most renders in progress / cap | longest "
          "wait after a worker's death (beyond its lease) | outcomes | swept by the fix | "
          "seconds |")  # fmt: skip
ALIGN = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"


def one_run(world: World, fault, rng: random.Random) -> RunResult:
    world.reset()
    job_ids = fault.run(world, rng)
    world.settle(job_ids, timeout=getattr(fault.run, "settle_seconds", 90))
    # A create still in flight at the provider (a slow request) lands in this run's count.
    time.sleep(getattr(fault.run, "calls_linger_seconds", 0))
    result = world.measure(job_ids)
    result.requested = len(set(job_ids))
    result.renders = world.fake.stats["renders_created"]
    result.max_in_progress = world.fake.stats["max_in_progress"]
    result.waits = world.deaths.finish()
    if result.renders != result.requested:
        result.notes.append(f"{result.renders} renders for {result.requested} videos")
    for wait in result.waits:
        result.notes.append(
            f"job {wait.job_id} ({wait.state}) moved on {wait.seconds:.1f} s "
            f"after its holder's death, lease left {wait.lease_left:.1f} s"
        )
    result.notes = world.notes + result.notes
    if world.findings or world.crashes:
        result.notes += world.findings + world.crashes
        result.stuck += len(world.crashes)
    world.crashes.clear()
    return result


def run_fault(world: World, fault, runs: int, rng: random.Random) -> tuple[dict, float]:
    started = time.monotonic()
    totals = {column: 0 for column in COLUMNS}
    totals.update(outcomes={}, swept=0, findings=0, requested=0, renders=0, unpaid_runs=0,
                  max_in_progress=0, waits=[])  # fmt: skip
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
            totals["requested"] += result.requested
            totals["renders"] += result.renders
            paid_once = result.renders == result.requested
            totals["unpaid_runs"] += not paid_once
            totals["max_in_progress"] = max(totals["max_in_progress"], result.max_in_progress)
            totals["waits"] += result.waits
            flag = "PROBLEM " if result.problems or world.findings or not paid_once else ""
            notes = "; ".join(" ".join(note.split()) for note in result.notes)
            print(f"  {fault.name} #{number}: {flag}{result.outcomes} {notes}", file=sys.stderr,
                  flush=True)  # fmt: skip
    finally:
        if hasattr(fault.run, "teardown"):
            fault.run.teardown(world)
    return totals, time.monotonic() - started


def render_ratio(totals: dict) -> str:
    ratio = totals["renders"] / totals["requested"] if totals["requested"] else 0.0
    odd = totals["unpaid_runs"]
    return f"{ratio:.2f}" + (f" ({odd} runs not 1.00)" if odd else "")


def longest_wait(totals: dict) -> str:
    if not totals["waits"]:
        return "no job held"
    worst = max(totals["waits"], key=lambda wait: wait.seconds)
    beyond = max(wait.beyond for wait in totals["waits"])
    return f"{worst.seconds:.1f} s ({beyond:.1f} s)"


def row(name: str, runs: int, totals: dict, seconds: float, cap: int) -> str:
    outcomes = ", ".join(f"{state} {count}" for state, count in sorted(totals["outcomes"].items()))
    cells = [name, runs, *(totals[column] for column in COLUMNS), render_ratio(totals),
             f"{totals['max_in_progress']} / {cap}", longest_wait(totals), outcomes,
             totals["swept"], f"{seconds:.0f}"]  # fmt: skip
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def failed(totals: dict, cap: int) -> bool:
    return (
        any(totals[column] for column in COLUMNS)
        or totals["findings"] > 0
        or totals["unpaid_runs"] > 0
        or totals["max_in_progress"] > cap
    )


def runs_of(spec: str, default: int) -> dict[str, int]:
    """`--runs-of "provider=5,storm=1"`: runs for the faults whose names start so."""
    pairs = [part.rsplit("=", 1) for part in spec.split(",") if part.strip()]
    return {prefix.strip(): int(count) for prefix, count in pairs} or {"": default}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each fault")
    parser.add_argument("--quick", action="store_true", help="3 runs of each fault")
    parser.add_argument("--only", default="", help="comma-separated fault names (prefixes)")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--runs-of", default="", help='e.g. "provider=5,storm=1": runs of the '
                        "faults whose names start so (others: --runs)")  # fmt: skip
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    overrides = runs_of(args.runs_of, runs) if args.runs_of else {}
    world = World()
    world.quick = args.quick
    try:
        from django.conf import settings

        from benchmarks import chaos_faults, chaos_items, chaos_submissions, chaos_workers
        from benchmarks.servers import big_mp4

        cap = settings.VIDEO_MAX_CONCURRENT_RENDERS
        world.big_video, world.medium_video = big_mp4(32), big_mp4(4)
        chosen = [name.strip() for name in args.only.split(",") if name.strip()]
        every = [*chaos_faults.FAULTS, *chaos_submissions.FAULTS, *chaos_items.FAULTS,
                 *chaos_workers.FAULTS]  # fmt: skip
        faults = [f for f in every if not chosen or any(f.name.startswith(c) for c in chosen)]
        rng = random.Random(args.seed)
        started = datetime.now(UTC)
        lines, problems = [], False
        for fault in faults:
            fault_runs = next((n for p, n in overrides.items() if fault.name.startswith(p)), runs)
            totals, seconds = run_fault(world, fault, fault_runs, rng)
            lines.append(row(fault.name, fault_runs, totals, seconds, cap))
            problems |= failed(totals, cap)
            print(lines[-1], file=sys.stderr, flush=True)
    finally:
        world.close()
    print(f"Content Studio chaos, {started:%Y-%m-%d %H:%M} UTC, {runs} runs per fault"
          f"{' (' + args.runs_of + ')' if args.runs_of else ''}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {world.database_label}, moto S3 server, fake HeyGen, "
          f"engine tick {ENGINE_TICK} s")  # fmt: skip
    print(HEADER)
    print(ALIGN)
    print("\n".join(lines))
    print("all zero, one render per video, the cap held" if not problems
          else "PROBLEMS: see the columns above", flush=True)  # fmt: skip
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
