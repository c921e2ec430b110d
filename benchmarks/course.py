"""Course scale: N avatar videos through the job engine, all real processes, against the
previous design (one worker per render, sleeping while it polls) in the same run.

    python -m benchmarks.course [--videos 40] [--render-seconds 20] [--cap 10] [--workers 2]
        [--poll-seconds 5] [--tick 2] [--baseline-poll-seconds 1]
        [--scenarios webhook,polling,cap,baseline] [--quick]

Processes: moto's S3 server, the fake HeyGen (wall-clock renders; it calls the registered
webhook when a render completes), `manage.py qcluster` with W workers, `manage.py
run_video_engine --tick T`, `manage.py runserver` for the webhook; PostgreSQL when
BENCH_DATABASE_URL is set, else a fresh SQLite file. Progress goes to stderr; the last stdout
line is JSON: {"rows": [...table rows...], "details": {...per scenario...}}.
"""

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from benchmarks.servers import (
    BUCKET,
    FakeHeyGenProcess,
    ProcessGroup,
    bench_env,
    free_port,
    start_s3,
    wait_for_port,
)

BASELINE_TASK = "benchmarks.course_baseline.render_and_store"
#: How long the engine's sweep leaves an untaken copy alone before waking it again.
REDISPATCH_SECONDS = 300
JOB_TASKS = ("avatars.jobs.check_render_job", "avatars.jobs.copy_video_job", BASELINE_TASK)


def log(message: str) -> None:
    print(f"[course {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def lesson_scripts(count: int) -> list[str]:
    return [
        f"Lesson {n + 1}: how plants turn light, water and air into sugar, part {n + 1}."
        for n in range(count)
    ]


# --- the measured cluster -------------------------------------------------------------------


def _stamp_execution_start(sender, task: dict, **kwargs) -> None:
    # django-q2 saves `started` as the enqueue time; the worker-seconds need the moment the
    # worker begins the function, so the benchmark's cluster records that instead.
    from django.utils import timezone

    task["started"] = timezone.now()


def run_cluster() -> None:
    """`manage.py qcluster`, with task `started` stamped when a worker begins the task."""
    import django

    django.setup()
    from django.core.management import execute_from_command_line
    from django_q.signals import pre_execute

    pre_execute.connect(_stamp_execution_start, dispatch_uid="course-bench-started")
    execute_from_command_line(["manage.py", "qcluster"])


class Stack:
    """The processes of one scenario; every one is stopped (its whole group) on the way out."""

    def __init__(self, workdir: Path, name: str):
        self.workdir, self.name = workdir, name
        self.processes: list[ProcessGroup] = []

    def start(self, *argv: str, env: dict) -> ProcessGroup:
        label = argv[1] if argv[0] == "manage.py" else "qcluster"
        process = ProcessGroup(*argv, env=env, log=self.workdir / f"{self.name}-{label}.log")
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout=5)


def _wait(predicate, *, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def _cluster_ready(stack: Stack) -> None:
    """A no-op task round trip: the cluster is up and taking tasks."""
    from django_q.models import Task
    from django_q.tasks import async_task

    task_id = async_task("time.time", task_name="course-bench-ready")
    _wait(lambda: Task.objects.filter(id=task_id).exists(), timeout=60, what="the qcluster")
    Task.objects.all().delete()  # the scenario's tasks only from here on


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- measurements ---------------------------------------------------------------------------


def _union(windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def _overlap(span: tuple[float, float], windows: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(span[1], end) - max(span[0], start)) for start, end in windows)


def worker_seconds(tasks, windows: dict[int, tuple[float, float]]) -> dict:
    """Worker time while renders were in progress: a task on job j counts for the part that
    overlaps j's render window; a task on no job (submit, the scheduled sweep, housekeeping)
    counts for the part that overlaps any render window. Copies are also summed apart."""
    any_render = _union(list(windows.values()))
    during, copying, total = 0.0, 0.0, 0.0
    for task in tasks:
        span = (task.started.timestamp(), task.stopped.timestamp())
        total += span[1] - span[0]
        if task.func == "avatars.jobs.copy_video_job":
            copying += span[1] - span[0]
        if task.func in JOB_TASKS:
            window = windows.get(task.args[0])
            during += _overlap(span, [window]) if window else 0.0
        else:
            during += _overlap(span, any_render)
    count = max(len(windows), 1)
    return {"during_renders_per_render": during / count, "copy_per_render": copying / count,
            "all_tasks_seconds": total, "tasks": len(tasks)}  # fmt: skip


def _tasks():
    from django_q.models import Task

    return list(Task.objects.exclude(name="course-bench-ready").order_by("started"))


def _wait_for_saved_tasks(func: str, count: int) -> None:
    """The cluster's monitor saves a task's row just after it ends."""
    from django_q.models import Task

    try:
        _wait(lambda: Task.objects.filter(func=func).count() >= count, timeout=15,
              what=f"{count} saved {func} tasks")  # fmt: skip
    except RuntimeError as error:
        log(str(error))


# --- scenarios ------------------------------------------------------------------------------


def engine_scenario(ctx: dict, name: str, *, webhook: bool, cap: int, poll: float) -> dict:
    """The job engine: a batch request, W workers, the engine ticking, the webhook or not."""
    from django.utils import timezone

    from avatars.models import VideoJob
    from avatars.services import avatar_video_request_batch
    from topics.models import Topic

    args, fake = ctx["args"], ctx["fake"]
    n, render = args.videos, args.render_seconds
    capped = cap < n
    fake.reset()
    fake.configure(render_seconds=render, max_concurrent=cap if capped else 0)
    env = dict(ctx["env"], VIDEO_MAX_CONCURRENT_RENDERS=str(cap))
    if not webhook:  # a fixed poll period P (no backoff), checked by the engine every T
        env.update(VIDEO_POLL_INTERVAL_SECONDS=str(poll),
                   VIDEO_POLL_MAX_INTERVAL_SECONDS=str(poll))  # fmt: skip
    stack = Stack(ctx["workdir"], name)
    objects_before = len(ctx["s3"].keys(BUCKET))
    try:
        if webhook:
            port = free_port()
            env["HEYGEN_WEBHOOK_SECRET"] = fake.register_webhook(
                f"http://127.0.0.1:{port}/webhooks/heygen/"
            )
            stack.start("manage.py", "runserver", "--noreload", f"127.0.0.1:{port}",
                        env=dict(env, DJANGO_ALLOWED_HOSTS="127.0.0.1"))  # fmt: skip
            wait_for_port(port)
        stack.start("-m", "benchmarks.course", "qcluster", env=env)
        _cluster_ready(stack)
        engine = stack.start("manage.py", "run_video_engine", "--tick", str(args.tick), env=env)
        engine_cpu_before = _cpu_seconds(engine.process.pid)
        topic = Topic.objects.create(title=f"Course ({name})", language="en")
        log(f"{name}: {n} videos, R={render:g} s, cap {cap}, "
            f"{'webhook' if webhook else f'polling every {poll:g} s'}")  # fmt: skip
        requested = time.time()
        ids = [job.pk for job in avatar_video_request_batch(topic=topic, scripts=ctx["scripts"])]
        # Generous: a dropped wake-up is repaired by the sweep only after its redispatch delay.
        timeout = math.ceil(n / min(cap, n)) * render * 3 + REDISPATCH_SECONDS + 120
        try:
            _wait(lambda: not VideoJob.objects.filter(
                      pk__in=ids, state__in=VideoJob.ACTIVE_STATES).exists(),
                  timeout=timeout, what=f"{name}: the jobs")  # fmt: skip
        except RuntimeError as error:
            log(str(error))
        _wait_for_saved_tasks("avatars.jobs.copy_video_job", n)
        engine_cpu = _cpu_seconds(engine.process.pid) - engine_cpu_before
        stats = fake.stats()
    finally:
        stack.stop()
    jobs = list(VideoJob.objects.filter(pk__in=ids))
    states = {job.state for job in jobs}
    problems = [f"job {job.pk} ended {job.state}: {job.last_error}" for job in jobs
                if job.state != "stored"]  # fmt: skip
    if stats["renders_created"] != n:
        problems.append(f"renders_created={stats['renders_created']}, not {n}")
    tasks = _tasks()
    windows = {job.pk: (job.started_at.timestamp(), job.rendered_at.timestamp())
               for job in jobs if job.rendered_at}  # fmt: skip
    makespan = max((job.finished_at or timezone.now()).timestamp() for job in jobs) - requested
    noticed_by_webhook = sum(1 for task in tasks if task.func == "avatars.jobs.check_render_job"
                             and isinstance(task.result, dict)
                             and task.result.get("rendered"))  # fmt: skip
    result = {
        "problems": problems,
        "makespan": makespan, "states": sorted(states), "renders_created": stats["renders_created"],
        "max_in_progress": stats["max_in_progress"], "concurrency_429": stats["concurrency_429"],
        "objects_stored": len(ctx["s3"].keys(BUCKET)) - objects_before,
        "noticed_by_webhook": noticed_by_webhook, "engine_cpu_seconds": engine_cpu,
        "last_submitted": max((job.started_at.timestamp() for job in jobs if job.started_at),
                              default=requested) - requested,
        "last_render_noticed": max((end for _, end in windows.values()), default=requested)
        - requested,
        **worker_seconds(tasks, windows),
    }  # fmt: skip
    log(f"{name}: makespan {makespan:.1f} s ({makespan / render:.2f} R); {result}")
    if problems:
        log(f"{name}: CHECKS FAILED: {problems[:5]}")
    return result


def baseline_scenario(ctx: dict) -> dict:
    """The previous design: one task per video holds a worker while it sleep-polls."""
    from django.db import transaction
    from django_q.tasks import async_task

    from topics.models import ContentItem, Topic
    from topics.services import content_item_create_avatar_video

    args, fake = ctx["args"], ctx["fake"]
    n, render = args.videos, args.render_seconds
    fake.reset()
    fake.configure(render_seconds=render)
    stack = Stack(ctx["workdir"], "baseline")
    objects_before = len(ctx["s3"].keys(BUCKET))
    try:
        stack.start("-m", "benchmarks.course", "qcluster", env=ctx["env"])
        _cluster_ready(stack)
        topic = Topic.objects.create(title="Course (baseline)", language="en")
        log(f"baseline: {n} videos, R={render:g} s, {args.workers} workers, one per render, "
            f"polling every {args.baseline_poll_seconds:g} s; about "
            f"{n / args.workers * render:.0f} s")  # fmt: skip
        requested = time.time()
        with transaction.atomic():
            items = [content_item_create_avatar_video(topic=topic, script=script)
                     for script in ctx["scripts"]]  # fmt: skip
        for item in items:
            async_task(BASELINE_TASK, item.pk, args.baseline_poll_seconds,
                       task_name=f"baseline-{item.pk}")  # fmt: skip
        try:
            _wait(lambda: len([t for t in _tasks() if t.func == BASELINE_TASK]) >= n,
                  timeout=(n / args.workers) * (render + 10) * 2 + 120, interval=1.0,
                  what="baseline: the tasks")  # fmt: skip
        except RuntimeError as error:
            log(str(error))
        stats = fake.stats()
    finally:
        stack.stop()
    tasks = _tasks()
    runs = {task.args[0]: task for task in tasks if task.func == BASELINE_TASK}
    failed = [f"item {pk}: {str(task.result)[:200]}" for pk, task in runs.items()
              if not task.success]  # fmt: skip
    ready = ContentItem.objects.filter(pk__in=[item.pk for item in items], status="ready").count()
    problems = [*failed, *([f"{ready} of {n} items stored"] if ready != n else []),
                *([f"renders_created={stats['renders_created']}"]
                  if stats["renders_created"] != n else [])]  # fmt: skip
    done = {pk: task.result for pk, task in runs.items() if task.success}
    windows = {pk: (times["render_started"], times["rendered"]) for pk, times in done.items()}
    makespan = max((times["stored"] for times in done.values()), default=time.time()) - requested
    result = {
        "problems": problems,
        "makespan": makespan, "renders_created": stats["renders_created"], "items_ready": ready,
        "max_in_progress": stats["max_in_progress"],
        "objects_stored": len(ctx["s3"].keys(BUCKET)) - objects_before,
        "copy_per_render_in_task": sum(t["stored"] - t["rendered"] for t in done.values()) / n,
        **worker_seconds(tasks, windows),
    }  # fmt: skip
    log(f"baseline: makespan {makespan:.1f} s ({makespan / render:.2f} R); {result}")
    if problems:
        log(f"baseline: CHECKS FAILED: {problems[:5]}")
    return result


# --- the table ------------------------------------------------------------------------------


def table_rows(args, results: dict) -> list[tuple]:
    """(name, unit, ours, baseline, ratio, target) rows, as benchmarks/__main__.py prints them."""
    n, render, workers = args.videos, args.render_seconds, args.workers
    rows: list[tuple] = []
    if "webhook" in results:
        span = results["webhook"]["makespan"]
        rows.append((f"course: {n} videos, webhook, makespan / R (R={render:g} s)", "s", span,
                     render, span / render, "<= 1.5"))  # fmt: skip
    if "polling" in results:
        polled = results["polling"]
        copies = polled["copy_per_render"] * n / workers
        bound = render + args.poll_seconds + copies
        rows.append((f"course: polling only (P={args.poll_seconds:g} s, tick {args.tick:g} s)"
                     " / (R + P + copies)", "s", polled["makespan"], bound,
                     polled["makespan"] / bound, "<= 1.00"))  # fmt: skip
        # A check runs at the first sweep after it is due and the next is due P after that
        # check: the period the engine achieves is P plus up to one tick.
        achieved = bound + args.tick
        rows.append(("course: polling only / (R + (P + tick) + copies)", "s",
                     polled["makespan"], achieved, polled["makespan"] / achieved,
                     "<= 1.00"))  # fmt: skip
    if "cap" in results:
        capped = results["cap"]
        bound = (math.ceil(n / args.cap) + 0.5) * render
        rows.append((f"course: cap C={args.cap}, webhook / (ceil(N/C) + 0.5) R", "s",
                     capped["makespan"], bound, capped["makespan"] / bound, "<= 1.00"))  # fmt: skip
        rows.append((f"course: cap C={args.cap}, provider's max renders in progress / C",
                     "renders", capped["max_in_progress"], args.cap,
                     capped["max_in_progress"] / args.cap, "<= 1.00"))  # fmt: skip
    ours = results.get("webhook") or results.get("polling")
    base = results.get("baseline")
    if ours and base:
        rows.append(("course: worker-seconds per render during renders, ours / previous", "s",
                     ours["during_renders_per_render"], base["during_renders_per_render"],
                     ours["during_renders_per_render"] / base["during_renders_per_render"],
                     "about 0"))  # fmt: skip
    if base:
        rows.append((f"course: previous design (1 worker per render, W={workers}), "
                     "makespan / R", "s", base["makespan"], render, base["makespan"] / render,
                     f"about N/W = {n / workers:g}"))  # fmt: skip
    if base and "webhook" in results:
        span = results["webhook"]["makespan"]
        rows.append(("course: makespan, ours (webhook) / previous design", "s", span,
                     base["makespan"], span / base["makespan"], "-"))  # fmt: skip
    failed = [name for name, result in results.items() if result.get("problems")]
    if failed:
        rows.append((f"course: CHECKS FAILED in {', '.join(failed)} (see details)", "-", 0, 0,
                     0, "all stored, N renders"))  # fmt: skip
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=None, help="N (40; --quick 10)")
    parser.add_argument("--render-seconds", type=float, default=None, help="R (20; --quick 5)")
    parser.add_argument("--cap", type=int, default=None, help="C for the cap case (10; quick 4)")
    parser.add_argument("--workers", type=int, default=2, help="W, Q_WORKERS of the qcluster")
    parser.add_argument("--poll-seconds", type=float, default=None, help="P (5; --quick 2)")
    parser.add_argument("--tick", type=float, default=2.0, help="run_video_engine --tick")
    parser.add_argument("--baseline-poll-seconds", type=float, default=1.0)
    parser.add_argument("--scenarios", default="webhook,polling,cap,baseline")
    parser.add_argument("--quick", action="store_true", help="N=10, R=5, C=4, P=2")
    args = parser.parse_args(argv)
    quick = {"videos": 10, "render_seconds": 5.0, "cap": 4, "poll_seconds": 2.0}
    full = {"videos": 40, "render_seconds": 20.0, "cap": 10, "poll_seconds": 5.0}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
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
        scripts = lesson_scripts(args.videos)
        started = time.monotonic()
        fake.reset()
        fake.prerender(scripts)
        log(f"the fake rendered the {len(scripts)} MP4s in {time.monotonic() - started:.1f} s")
        ctx = {"args": args, "fake": fake, "s3": s3, "env": env, "scripts": scripts,
               "workdir": workdir}  # fmt: skip
        results: dict = {}
        for name in args.scenarios.split(","):
            if name == "webhook":
                results[name] = engine_scenario(ctx, name, webhook=True, cap=args.videos + 10,
                                                poll=args.poll_seconds)  # fmt: skip
            elif name == "polling":
                results[name] = engine_scenario(ctx, name, webhook=False, cap=args.videos + 10,
                                                poll=args.poll_seconds)  # fmt: skip
            elif name == "cap":
                results[name] = engine_scenario(ctx, name, webhook=True, cap=args.cap,
                                                poll=args.poll_seconds)  # fmt: skip
            elif name == "baseline":
                results[name] = baseline_scenario(ctx)
            else:
                raise SystemExit(f"unknown scenario {name!r}")
    finally:
        if fake is not None:
            fake.stop()
        s3.stop()
    details = {"videos": args.videos, "render_seconds": args.render_seconds, "cap_c": args.cap,
               "workers": args.workers, "poll_seconds": args.poll_seconds, "tick": args.tick,
               "baseline_poll_seconds": args.baseline_poll_seconds,
               "database": env["DATABASE_URL"].split(":", 1)[0],
               "finished": datetime.now().isoformat(timespec="seconds"), **results}  # fmt: skip
    print(json.dumps({"rows": table_rows(args, results), "details": details}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["qcluster"]:
        run_cluster()
    else:
        main()
