"""Course scale (issue 20): avatar videos through the job engine, all real processes; how
soon a finished render is playable, what polling costs without the webhook, a qcluster-only
deployment, and a course of N videos at once.

    python -m benchmarks.course [--videos 100] [--render-seconds 20] [--large-videos 500]
        [--latency-videos 30] [--spacing 1] [--polling-videos 20] [--workers 2] [--tick 2]
        [--scenarios latency,latency-redis,polling,polling-cold,polling-steady,batch,
                     qcluster-only,large] [--quick]

Processes: moto's S3 server, the fake HeyGen (wall-clock renders: done R s after the create;
it calls the registered webhook then), `manage.py qcluster` with W workers, `manage.py
run_video_engine --tick T` (not in `qcluster-only`), `manage.py runserver` for the webhook,
a private `redis-server` for `latency-redis`; PostgreSQL when BENCH_DATABASE_URL is set, else
a fresh SQLite file. The run starts from no job history (as a fresh database) and the
scenarios run in the order given: a scenario's first status checks are timed from the renders
before it. Progress goes to stderr; the last stdout line is JSON: {"rows": [...table
rows...], "details": {...per scenario...}}.
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from benchmarks.course_figures import summarize, table_rows
from benchmarks.course_scenarios import Deployment, clear_history, log, run_scenario
from benchmarks.servers import FakeHeyGenProcess, bench_env, start_s3

SCENARIOS = "latency,latency-redis,polling,polling-cold,polling-steady,batch,qcluster-only,large"
QUICK_SCENARIOS = "latency,latency-redis,polling-cold,batch,qcluster-only"


def lesson_scripts(count: int, distinct: int) -> list[str]:
    """Scripts of one length (the engine times first checks per script character, the fake
    renders every script in R), `distinct` different ones (the fake renders each MP4 once)."""
    return [
        f"Lesson {n % distinct + 1:02d}: how plants turn light, water and air into sugar, "
        f"part {n % distinct + 1:02d}."
        for n in range(count)
    ]


def run(ctx: dict, name: str) -> dict:
    """One scenario by name (see the module's docstring)."""
    args = ctx["args"]
    if name in ("latency", "latency-redis"):
        broker = "redis" if name == "latency-redis" else "orm"
        world = run_scenario(ctx, name, Deployment(broker=broker), count=args.latency_videos,
                             spacing=args.spacing)  # fmt: skip
        count = args.latency_videos
    elif name in ("polling", "polling-cold", "polling-steady"):
        if name == "polling-cold":
            log(f"polling-cold: {clear_history()} rows deleted: no render history")
        count = args.polling_videos
        world = run_scenario(ctx, name, Deployment(webhook=False), count=count)
    elif name in ("batch", "qcluster-only"):
        count = args.videos
        world = run_scenario(ctx, name, Deployment(engine=name == "batch"), count=count)
    elif name == "large":
        count = args.large_videos
        world = run_scenario(ctx, name, Deployment(), count=count)
    else:
        raise SystemExit(f"unknown scenario {name!r}")
    result = summarize(world, count=count)
    log(f"{name}: makespan {result['makespan']:.1f} s; done->playable "
        f"{result['done_to_playable']}; copy {result['copy_seconds']}; status calls per "
        f"render {result['status_calls_per_render']:.2f}; engine statements per job "
        f"{result['engine_statements_per_job']:.1f} {result['statements_per_job']}")  # fmt: skip
    if result["problems"]:
        log(f"{name}: CHECKS FAILED: {result['problems'][:5]}")
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=None, help="N of batch (100; quick 20)")
    parser.add_argument("--render-seconds", type=float, default=None, help="R (20; quick 5)")
    parser.add_argument("--large-videos", type=int, default=None, help="N of large (500)")
    parser.add_argument("--latency-videos", type=int, default=None, help="latency (30)")
    parser.add_argument("--spacing", type=float, default=None, help="latency: s between (1)")
    parser.add_argument("--polling-videos", type=int, default=None, help="polling (20)")
    parser.add_argument("--workers", type=int, default=2, help="W, Q_WORKERS of the qcluster")
    parser.add_argument("--tick", type=float, default=2.0, help="run_video_engine --tick")
    parser.add_argument("--redis-port", type=int, default=6391, help="the private redis")
    parser.add_argument("--scenarios", default=None, help=f"{SCENARIOS} ({QUICK_SCENARIOS})")
    parser.add_argument("--quick", action="store_true", help="R=5 and small counts")
    args = parser.parse_args(argv)
    quick = {"videos": 20, "render_seconds": 5.0, "large_videos": 40, "latency_videos": 10,
             "spacing": 1.0, "polling_videos": 6, "scenarios": QUICK_SCENARIOS,
             "distinct_scripts": 10}  # fmt: skip
    full = {"videos": 100, "render_seconds": 20.0, "large_videos": 500, "latency_videos": 30,
            "spacing": 1.0, "polling_videos": 20, "scenarios": SCENARIOS,
            "distinct_scripts": 40}  # fmt: skip
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    return args


def database_url(workdir: Path) -> str:
    return os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{workdir / 'course.sqlite3'}"


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally`s
    workdir = Path(tempfile.mkdtemp(prefix="cs-course-bench-"))
    log(f"logs in {workdir}")
    s3 = start_s3()
    fake = None
    started = time.monotonic()
    try:
        fake = FakeHeyGenProcess()
        env = bench_env({
            "DATABASE_URL": database_url(workdir),
            "AVATAR_PROVIDER": "heygen",
            "HEYGEN_API_KEY": FakeHeyGenProcess.API_KEY,
            "HEYGEN_API_BASE": fake.base_url,
            "AVATAR_DOWNLOAD_ALLOWED_HOSTS": fake.host_port,
            "Q_WORKERS": str(args.workers),
        }, s3)  # fmt: skip
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        log(f"{clear_history()} job rows of earlier runs deleted: no render history")
        counts = (args.videos, args.large_videos, args.latency_videos, args.polling_videos)
        scripts = lesson_scripts(max(counts), args.distinct_scripts)
        fake.reset()
        fake.prerender(scripts[: args.distinct_scripts])
        log(f"the fake rendered {args.distinct_scripts} MP4s in "
            f"{time.monotonic() - started:.1f} s")  # fmt: skip
        ctx = {"args": args, "fake": fake, "s3": s3, "env": env, "scripts": scripts,
               "workdir": workdir}  # fmt: skip
        results = {name: run(ctx, name) for name in args.scenarios.split(",")}
    finally:
        if fake is not None:
            fake.stop()
        s3.stop()
    details = {"render_seconds": args.render_seconds, "workers": args.workers,
               "tick": args.tick, "database": env["DATABASE_URL"].split(":", 1)[0],
               "minutes": round((time.monotonic() - started) / 60, 1),
               "finished": datetime.now().isoformat(timespec="seconds"), **results}  # fmt: skip
    print(json.dumps({"rows": table_rows(args, results), "details": details}))


if __name__ == "__main__":
    main()
